"""systemd integration: socket activation and readiness notification.

Both halves are plain environment-variable protocols, so this module speaks
them with the standard library (no libsystemd), and does nothing at import.

**Socket activation** (sd_listen_fds(3)).  systemd binds the sockets of a
``.socket`` unit itself and starts the service with them open from fd 3 on
(``SD_LISTEN_FDS_START``), in the order of the unit's ``Listen*=`` lines.
Three variables describe them: ``LISTEN_PID`` (the process they are meant
for; anyone else must ignore them, since children inherit the environment),
``LISTEN_FDS`` (how many) and ``LISTEN_FDNAMES`` (colon-separated names, one
per fd, from ``FileDescriptorName=``; a socket unit without it names its fds
after itself, ``myapp.socket``; when the variable is missing altogether, as
with ``systemd-socket-activate`` run without ``--fdname``, every fd is named
``unknown``).  :func:`listen_fds` reads them once, marks the fds close-on-exec
and removes the variables, as sd_listen_fds does.

Choosing a socket on the command line: ``fd:N`` (already understood by
:mod:`dumbwaiter.server.sockets`) picks one by number, and ``systemd:NAME``,
resolved by :func:`activated_socket`, picks one by its
``FileDescriptorName=``.  Why a new prefix rather than ``fd:NAME``: a name
may be any ASCII text without ``:`` or control characters, digits included,
so ``fd:3`` would be ambiguous; and ``systemd:`` says where the socket comes
from, so a missing name can be reported as such.  The peers accept numbers
only (gunicorn and hypercorn ``--bind fd://N``, uvicorn ``--fd N``; gunicorn
also takes every activated socket when ``LISTEN_FDS`` is set, with no way to
tell them apart), so naming is the one thing they lack: with names, a unit
can carry a FastCGI socket and an HTTP one and reorder its ``Listen*=``
lines without breaking the service.

**Notification** (sd_notify(3)).  ``NOTIFY_SOCKET`` names a datagram unix
socket (a path, or an abstract address when it starts with ``@``); each
message is ``KEY=VALUE`` lines.  :func:`notify` sends one, and never fails
the caller: a lost notification must not take a serving process down.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence

__all__ = [
    "SD_LISTEN_FDS_START",
    "ActivationError",
    "activated",
    "activated_socket",
    "listen_fds",
    "mainpid",
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
]

log = logging.getLogger("dumbwaiter")

SD_LISTEN_FDS_START = 3
#: Address prefix that picks an activated socket by its FileDescriptorName=.
PREFIX = "systemd:"
#: What sd_listen_fds_with_names(3) calls an fd when LISTEN_FDNAMES is unset.
UNKNOWN_NAME = "unknown"
#: LISTEN_PIDFDID (systemd >= 258) qualifies LISTEN_PID; we check the pid
#: only, and remove it with the others so that children do not inherit it.
_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "LISTEN_PIDFDID")


class ActivationError(Exception):
    """Socket activation is malformed or names no such socket; the message says which."""


Activated = Sequence[tuple[str, socket.socket]]


def listen_fds(unset_environment: bool = True) -> list[tuple[str, socket.socket]]:
    """The sockets systemd passed to this process, as ``(name, socket)`` pairs.

    Empty when ``LISTEN_PID`` is unset or names another process.  Each fd
    (3, 4, ...) is set close-on-exec and wrapped in a :class:`socket.socket`
    that the caller now owns.  With ``unset_environment`` the variables are
    removed whatever the outcome (as sd_listen_fds does), so a second call
    returns nothing and children do not see them.

    Raises :class:`ActivationError` for a malformed ``LISTEN_PID`` or
    ``LISTEN_FDS``, a name count that differs from the fd count, or an fd
    that is not an open socket; nothing is taken over then.
    """
    try:
        return _listen_fds(os.environ)
    finally:
        if unset_environment:
            for name in _VARIABLES:
                os.environ.pop(name, None)


def _listen_fds(env: Mapping[str, str]) -> list[tuple[str, socket.socket]]:
    pid_text = env.get("LISTEN_PID")
    if pid_text is None:
        return []
    if _number("LISTEN_PID", pid_text, minimum=1) != os.getpid():
        return []
    count = _number("LISTEN_FDS", env.get("LISTEN_FDS", "0"), minimum=0)
    names_text = env.get("LISTEN_FDNAMES")
    if names_text is None:
        names = [UNKNOWN_NAME] * count
    else:
        names = names_text.split(":") if count else []
        if len(names) != count:
            raise ActivationError(
                f"LISTEN_FDNAMES={names_text!r} has {len(names)} names for LISTEN_FDS={count}"
            )
    taken: list[tuple[str, socket.socket]] = []
    try:
        for fd, name in enumerate(names, SD_LISTEN_FDS_START):
            try:
                os.set_inheritable(fd, False)
                sock = socket.socket(fileno=fd)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise ActivationError(
                    f"LISTEN_FDS: fd {fd} ({name}) is not a socket: {reason}"
                ) from None
            taken.append((name, sock))
    except ActivationError:
        for _, sock in taken:
            sock.detach()  # the fds stay open, owned by no object
        raise
    return taken


def _number(variable: str, text: str, minimum: int) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < minimum:
        raise ActivationError(f"{variable}={text!r} is not a number of at least {minimum}")
    return int(text)


_activated: list[tuple[str, socket.socket]] | None = None


def activated() -> list[tuple[str, socket.socket]]:
    """:func:`listen_fds` for the whole process, read on the first call only.

    sd_listen_fds unsets the variables, so the answer must be kept; call this
    once at start-up (before forking workers) even when no address names an
    activated socket, so that the variables do not leak to children.
    """
    global _activated
    if _activated is None:
        _activated = listen_fds()
    return _activated


def activated_socket(spec: str, fds: Activated | None = None) -> socket.socket | None:
    """The activated socket an address names, or ``None`` when it names none.

    ``systemd:NAME`` must name exactly one socket of ``fds`` (default:
    :func:`activated`); ``fd:N`` gives the activated socket on fd N, if N is
    one, so that the fd has a single owner (``None`` otherwise: the caller
    wraps the fd itself).  Any other address gives ``None``.  The socket is
    not a copy: closing it closes the activated fd.

    Raises :class:`ActivationError` when the name is absent, ambiguous, or
    not a listening socket (``Accept=yes`` units pass connections, which a
    server cannot listen on).
    """
    if fds is None:
        fds = activated()
    if spec.startswith("fd:"):
        number = spec[3:]
        found = [(n, s) for n, s in fds if number.isdigit() and s.fileno() == int(number)]
        return _listening(spec, found[0]) if found else None
    if not spec.startswith(PREFIX):
        return None
    name = spec[len(PREFIX) :]
    if not name:
        raise ActivationError(f"{spec}: write systemd:NAME, NAME as in FileDescriptorName=")
    if not fds:
        raise ActivationError(
            f"{spec}: this process was not socket-activated (LISTEN_FDS/LISTEN_PID not set for it)"
        )
    matches = [(n, s) for n, s in fds if n == name]
    if not matches:
        known = ", ".join(sorted({n for n, _ in fds}))
        raise ActivationError(f"{spec}: systemd passed no socket named {name!r} (names: {known})")
    if len(matches) > 1:
        numbers = ", ".join(str(s.fileno()) for _, s in matches)
        raise ActivationError(
            f"{spec}: {len(matches)} sockets are named {name!r} (fds {numbers}); "
            "give each its own FileDescriptorName=, or use fd:N"
        )
    return _listening(spec, matches[0])


def _listening(spec: str, named: tuple[str, socket.socket]) -> socket.socket:
    name, sock = named
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = 0
    if not listening:
        raise ActivationError(
            f"{spec}: fd {sock.fileno()} ({name}) is not a listening socket "
            "(use Accept=no in the socket unit)"
        )
    return sock


def notify(state: str) -> bool:
    """Send ``state`` (``KEY=VALUE`` lines) to the service manager.

    Returns True when the datagram went out, False when ``NOTIFY_SOCKET`` is
    unset or unusable or the send failed (logged at debug level); never
    raises for those.
    """
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    if target.startswith("@"):
        address = "\0" + target[1:]  # abstract namespace, see unix(7)
    elif target.startswith("/"):
        address = target
    else:
        log.debug("NOTIFY_SOCKET=%r: only unix socket addresses are supported", target)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.debug("sd_notify %r to %s failed: %s", state, target, exc)
        return False
    return True


def ready(status: str | None = None) -> bool:
    """Start-up, or a reload, is complete: ``READY=1``."""
    return notify(_with_status("READY=1", status))


def reloading(status: str | None = None) -> bool:
    """A reload begins: ``RELOADING=1`` with the ``MONOTONIC_USEC`` stamp.

    ``Type=notify-reload`` (systemd >= 253) matches the stamp against the
    time it sent the reload signal, and fails the reload without it; older
    managers ignore the field.  Follow with :func:`ready` when done.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(_with_status(f"RELOADING=1\nMONOTONIC_USEC={usec}", status))


def stopping(status: str | None = None) -> bool:
    """Shutdown begins: ``STOPPING=1``."""
    return notify(_with_status("STOPPING=1", status))


def status(text: str) -> bool:
    """A one-line status for ``systemctl status``: ``STATUS=...``."""
    return notify(_with_status("", text))


def mainpid(pid: int) -> bool:
    """The service's main process is now ``pid`` (after a re-exec): ``MAINPID=``.

    systemd accepts it from a process other than the main one only with
    ``NotifyAccess=all``.
    """
    return notify(f"MAINPID={pid}")


def _with_status(state: str, text: str | None) -> str:
    if text is None:
        return state
    # One message is newline-separated assignments: a newline in the text
    # would end the STATUS= value and start a bogus assignment.
    line = f"STATUS={' '.join(text.splitlines())}"
    return f"{state}\n{line}" if state else line
