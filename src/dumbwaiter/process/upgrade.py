"""Upgrade in place (SIGUSR2): a new master on the same sockets.

The old master forks and executes itself anew (``argv``: the same command
line, so a new version of dumbwaiter, Python or the app is picked up),
passing the listening sockets' descriptors in :data:`INHERIT_VARIABLE` and
its own pid in :data:`UPGRADE_VARIABLE` (:meth:`Upgrade.start`).  The new
master takes the sockets by their addresses (:class:`Inheritance`, read by
:mod:`dumbwaiter.main`) and binds only what the old one did not hold.  Once
all its workers are ready it tells systemd its pid (``MAINPID``) and sends
SIGTERM to the old master (:meth:`Upgrade.take_over`), which drains and
exits without removing the unix socket files or the pid file.  If the new
master fails, the old one notices its exit (:meth:`Upgrade.ended`) and
serves on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import MutableMapping

from ..config import Config
from ..server import systemd
from ..server.listeners import Listener

__all__ = ["INHERIT_VARIABLE", "UPGRADE_VARIABLE", "Inheritance", "Upgrade"]

log = logging.getLogger("dumbwaiter")

#: How an upgrade in place passes the listening sockets: one line per
#: socket, "KIND FD ADDRESS" (KIND: the protocol, or metrics or status for
#: the master's own addresses); and the old master's pid.
INHERIT_VARIABLE = "DUMBWAITER_INHERIT"
UPGRADE_VARIABLE = "DUMBWAITER_UPGRADE_FROM"
#: The master's own HTTP addresses (:mod:`dumbwaiter.process.status`).
ADMIN_KINDS = ("metrics", "status")


class Upgrade:
    """The old master's side: starting a successor and noticing its end;
    and the new master's: taking over from ``replacing`` (0: none).

    ``argv`` starts this server again (None: started from Python, no
    upgrade in place).
    """

    def __init__(self, argv: list[str] | None, replacing: int) -> None:
        self.argv = argv
        self.replacing = replacing
        #: The new master of an upgrade under way (0: none).
        self.successor = 0

    def start(
        self, listeners: list[Listener], admin: dict[str, socket.socket], config: Config
    ) -> None:
        """Fork and execute a new master that inherits the ``listeners`` and
        the ``admin`` sockets (--metrics, --status: the new master binds
        nothing the old one holds).  Logs, and does nothing, when it cannot."""
        if self.argv is None:
            log.warning("master: SIGUSR2: started from Python, cannot re-execute; use SIGHUP")
            return
        if self.successor:
            log.warning("master: SIGUSR2: upgrade already under way (pid %d)", self.successor)
            return
        handed = [(li.protocol, li.sock, li.address.text) for li in listeners]
        texts = {"metrics": config.metrics or "", "status": config.status or ""}
        handed += [(kind, sock, texts[kind]) for kind, sock in admin.items()]
        lines = []
        for kind, sock, text in handed:
            os.set_inheritable(sock.fileno(), True)
            lines.append(f"{kind} {sock.fileno()} {text}")
        env = dict(os.environ)
        env[INHERIT_VARIABLE] = "\n".join(lines)
        env[UPGRADE_VARIABLE] = str(os.getpid())
        pid = os.fork()
        if pid == 0:  # the new master-to-be
            try:
                os.execve(self.argv[0], self.argv, env)
            finally:
                os._exit(127)
        for _, sock, _ in handed:
            os.set_inheritable(sock.fileno(), False)
        self.successor = pid
        log.info("master: SIGUSR2: upgrading in place: new master %d starting", pid)

    def ended(self, pid: int, how: str, stopping: bool) -> bool:
        """Whether the reaped child ``pid`` (which ended ``how``) was our
        successor; one that ends while we serve has failed."""
        if not pid or pid != self.successor:
            return False
        self.successor = 0
        if not stopping:
            log.error("master: upgrade failed: the new master %d ended (%s); serving on", pid, how)
        return True

    def take_over(self) -> None:
        """The new master's workers are all ready: end the old master."""
        if not self.replacing:
            return
        log.info("master: upgrade: taking over from master %d", self.replacing)
        systemd.mainpid(os.getpid())
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.replacing, signal.SIGTERM)
        self.replacing = 0


class Inheritance:
    """What an old master handed us (address text -> kind and descriptor).

    :meth:`take` hands each socket out once; :meth:`close_rest` closes those
    the new command line no longer names.
    """

    def __init__(self, handed: dict[str, tuple[str, int]], old_master: int) -> None:
        self.handed = handed
        self.old_master = old_master

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str]) -> Inheritance:
        """Read and remove the variables (so that our own workers and
        successors do not see them)."""
        lines = environ.pop(INHERIT_VARIABLE, "")
        old = environ.pop(UPGRADE_VARIABLE, "")
        handed: dict[str, tuple[str, int]] = {}
        for line in lines.splitlines():
            kind, fd, text = line.split(" ", 2)
            handed[text] = (kind, int(fd))
        return cls(handed, int(old) if old.isdigit() else 0)

    def addresses(self) -> list[tuple[str, str]]:
        """The listeners handed over, as (protocol, address text)."""
        return [(kind, text) for text, (kind, _) in self.handed.items() if kind not in ADMIN_KINDS]

    def take(self, text: str, *, admin: bool) -> socket.socket | None:
        """The socket handed over for ``text`` (a listener's address, or with
        ``admin`` a --metrics or --status address), or None."""
        kind, fd = self.handed.get(text, ("", -1))
        if fd < 0 or (kind in ADMIN_KINDS) != admin:
            return None
        del self.handed[text]
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        return sock

    def close_rest(self) -> None:
        for text, (kind, fd) in self.handed.items():
            os.close(fd)
            if kind not in ADMIN_KINDS:
                log.info("upgrade: no longer serving %s", text)
        self.handed.clear()
