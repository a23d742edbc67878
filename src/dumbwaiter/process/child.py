"""One worker process, from both sides of the fork.

:class:`Worker` is the master's record of a child: what its messages said
(ready, heartbeat, retire, failed, stats; :mod:`dumbwaiter.server.channel`)
and how far the master has got in stopping it.  :func:`become_worker` is
what the child does between ``fork`` and serving: drop what is the master's,
arm :mod:`faulthandler`, load the app, run
:func:`~dumbwaiter.server.worker.run_worker`, and leave with ``os._exit``.

Why :mod:`faulthandler`
    A worker whose loop is blocked (a C extension holding the GIL, a lock
    taken twice) is of no use, and the most useful thing it can still do is
    say where it is stuck.  So the master stops a hung worker with SIGABRT
    first: ``faulthandler``'s signal handler is C code that needs neither the
    GIL nor the event loop, and writes every thread's stack to the error log
    before the process ends.  SIGKILL follows if it does not end within
    :data:`ABORT_GRACE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..accesslog import AccessLog
from ..config import Config
from ..hooks import HookError, Hooks, WorkerInfo
from ..server.channel import WorkerChannel, parse
from ..server.listeners import Listener
from ..server.worker import run_worker
from ..typing import WSGIApp

__all__ = [
    "ABORT_GRACE_SECONDS",
    "EXIT_APP_FAILED",
    "MASTER_SIGNALS",
    "AppLoadFailed",
    "Setup",
    "Worker",
    "become_worker",
    "describe_exit",
    "fork_worker",
    "reaped",
]

log = logging.getLogger("dumbwaiter")

#: A worker's exit status when the app could not be loaded.
EXIT_APP_FAILED = 3

MASTER_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
)
#: What a worker leaves to the master.
WORKER_IGNORES = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2)

#: A ready worker silent this long has a blocked event loop: aborted.
HEARTBEAT_SECONDS = 30.0
#: A worker not ready this long after its fork is aborted.
BOOT_SECONDS = 60.0
#: From SIGABRT to SIGKILL.  Writing the stacks takes milliseconds; this
#: leaves room for a slow disk under the error log, and bounds the wait for a
#: worker whose SIGABRT was caught or ignored (by the app, or C code in it).
ABORT_GRACE_SECONDS = 3.0
#: What follows a stop signal that a worker outlived.
HARDER: dict[int, int] = {
    signal.SIGTERM: signal.SIGABRT,
    signal.SIGQUIT: signal.SIGABRT,
    signal.SIGABRT: signal.SIGKILL,
}


class AppLoadFailed(Exception):
    """The loader's error, as one line (what the master reports)."""


@dataclass(eq=False)
class Worker:
    """The master's view of one worker process."""

    pid: int
    fd: int  # read end of the worker's channel
    generation: int
    born: float
    buffer: bytearray = field(default_factory=bytearray)
    ready: bool = False
    last_beat: float = 0.0
    served: int = 0
    rss: int = 0
    load: int = 0
    retiring: str = ""
    retired_at: float = 0.0
    failed: str = ""
    #: The last signal sent to stop it (0: none, it is to serve on), and when
    #: the next, harder one (:data:`HARDER`) is due unless it has ended.
    stop_signal: int = 0
    harder_at: float = 0.0
    #: Its last --metrics snapshot, and since when all its threads are busy.
    stats: dict[str, Any] | None = None
    busy_since: float = 0.0
    #: What the hooks are given for it.
    info: WorkerInfo | None = None

    @property
    def stop_sent(self) -> bool:
        """Whether it was asked to stop (it is no longer counted as serving)."""
        return self.stop_signal != 0

    def due(self, now: float) -> tuple[int, str] | None:
        """The signal this worker has earned by ``now``, and why; or None.

        A worker asked to stop that is still there when its grace ran out
        gets the next signal in :data:`HARDER`; one that serves is aborted
        when it is silent (its loop is blocked) or does not start in time.
        """
        harder = HARDER.get(self.stop_signal, 0)
        if harder:
            if now < self.harder_at:
                return None
            if harder == signal.SIGKILL:
                return harder, "outlived SIGABRT"
            return harder, "did not stop in time"
        if self.stop_sent:
            return None  # SIGKILL sent: only reaping is left
        if not self.ready and now - self.born > BOOT_SECONDS:
            return signal.SIGABRT, f"not ready after {BOOT_SECONDS:g}s"
        if self.ready and now - self.last_beat > HEARTBEAT_SECONDS:
            return signal.SIGABRT, f"silent for {HEARTBEAT_SECONDS:g}s (blocked event loop)"
        return None

    def signal(self, signum: int, grace: float, now: float) -> None:
        """Send ``signum`` to stop it; the next, harder signal is due
        ``grace`` seconds later unless it has ended by then."""
        self.send(signum)
        self.stop_signal = signum
        self.harder_at = now + grace

    def send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # ended, not reaped yet
            os.kill(self.pid, signum)

    def read(self) -> bytes | None:
        """What its pipe holds now: b"" at its end, None when nothing came."""
        try:
            return os.read(self.fd, 65536)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def read_rest(self) -> Iterator[bytes]:
        """Once it has ended: what it left in its pipe."""
        for _ in range(64):
            if not (data := self.read()):
                return
            yield data

    def take(self, data: bytes, now: float, threads: int) -> list[str]:
        """Update the record from the complete messages in ``data`` (and what
        came before it); returns the news for the master: ``"ready"``, and
        ``"retire"`` the first time it asks to be replaced."""
        self.buffer += data
        news = []
        for kind, text in parse(self.buffer):
            self.last_beat = now
            if kind == "ready":
                self.ready = True
                news.append(kind)
            elif kind == "beat":  # served, rss, load (busy threads + queued requests)
                with contextlib.suppress(ValueError):
                    self.served, self.rss, self.load = (int(n) for n in text.split(" "))
            elif kind == "retire" and not self.retiring:
                self.retiring = text or "asked to"
                self.retired_at = now
                news.append(kind)
            elif kind == "stats":
                self._take_stats(text, now, threads)
            elif kind == "failed":
                self.failed = text
        return news

    def _take_stats(self, text: str, now: float, threads: int) -> None:
        with contextlib.suppress(ValueError):
            stats = json.loads(text)
            if isinstance(stats, dict):
                self.stats = stats
                if stats.get("gauges", {}).get("busy", 0) < threads:
                    self.busy_since = 0.0
                elif not self.busy_since:
                    self.busy_since = now

    @property
    def retire_reason(self) -> str:
        """Why it retired, as a label of ``dumbwaiter_worker_restarts_total``."""
        for option in ("--max-requests", "--max-rss", "--max-lifetime", "--timeout"):
            if option in self.retiring:
                return option.removeprefix("--")
        return "retired"

    @property
    def state(self) -> str:
        """As the status page says it: starting, serving, retiring or stopping."""
        if self.stop_sent:
            return "stopping"
        if self.retiring:
            return "retiring"
        return "serving" if self.ready else "starting"


@dataclass(frozen=True)
class Setup:
    """What a new worker needs: the app when loaded before the fork
    (``--preload``; else None, and ``load`` loads it in the worker), and
    what :func:`~dumbwaiter.server.worker.run_worker` is given."""

    app: WSGIApp | None
    load: Callable[[], WSGIApp]
    config: Config
    listeners: list[Listener]
    access_log: AccessLog | None
    master_pid: int
    hooks: Hooks = field(default_factory=Hooks)


def fork_worker(
    setup: Setup, generation: int, age: int, release: Callable[[], None], server: object
) -> Worker:
    """Fork a worker of ``generation``, the ``age``-th, that serves as
    ``setup`` says; returns the master's record of it (see
    :func:`become_worker`).  ``server``: the master, for the hooks."""
    info = WorkerInfo(0, os.getpid(), age, generation)
    setup.hooks.call("pre_fork", server, info)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker; never returns
        os.close(read_fd)
        info.pid = os.getpid()
        become_worker(write_fd, setup, release, server, info)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    info.pid = pid
    return Worker(pid, read_fd, info.generation, born=time.monotonic(), info=info)


def become_worker(
    channel_fd: int,
    setup: Setup,
    release: Callable[[], None],
    server: object = None,
    info: WorkerInfo | None = None,
) -> NoReturn:
    """In a child just forked: serve, then exit; never returns.

    ``release`` closes the master's descriptors (its selector, the other
    workers' pipes ...).  The app's failure to load, or a ``post_fork`` or
    ``post_worker_init`` hook's, goes to the master over the channel, with
    exit status :data:`EXIT_APP_FAILED`.
    """
    code = 1
    hooks = setup.hooks
    info = info or WorkerInfo(os.getpid(), setup.master_pid, 0, 0)
    try:
        if "worker_abort" in hooks:  # (first: faulthandler's C handler chains to it)
            signal.signal(signal.SIGABRT, functools.partial(_aborted, hooks, info))
        arm_fault_handler()
        signal.set_wakeup_fd(-1)
        for signum in MASTER_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        for signum in WORKER_IGNORES:
            signal.signal(signum, signal.SIG_IGN)
        release()
        channel = WorkerChannel(channel_fd, setup.master_pid)
        app = _load(setup, channel, server, info)
        if app is None:
            code = EXIT_APP_FAILED
        else:
            interrupted = functools.partial(hooks.call, "worker_int", info)
            run_worker(app, setup.config, setup.listeners, channel, setup.access_log, interrupted)
            code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker %d crashed", os.getpid())
        code = 1
    finally:
        hooks.call("worker_exit", server, info)
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _load(setup: Setup, channel: WorkerChannel, server: object, info: WorkerInfo) -> WSGIApp | None:
    """The app, after the ``post_fork`` hook and before ``post_worker_init``,
    wrapped in the request hooks; or None when it cannot be loaded or a
    hook failed (the master is told why)."""
    hooks = setup.hooks
    try:
        hooks.call_at_start("post_fork", server, info)
        app = setup.app if setup.app is not None else setup.load()
        hooks.call_at_start("post_worker_init", info)
    except Exception as exc:
        message = str(exc) if isinstance(exc, AppLoadFailed | HookError) else describe(exc)
        log.debug("loading the app failed", exc_info=True)
        channel.send("failed", message)
        return None
    return hooks.wrap(app, info)


def _aborted(hooks: Hooks, info: WorkerInfo, signum: int, frame: object) -> None:
    """SIGABRT, once faulthandler has written the stacks, when this thread
    still runs Python: the ``worker_abort`` hook, then the abort itself."""
    hooks.call("worker_abort", info)
    signal.signal(signal.SIGABRT, signal.SIG_DFL)
    os.abort()


def arm_fault_handler() -> None:
    """Have a fatal signal (SIGABRT from the master, or a crash in C code)
    write every thread's stack to the error log: its file with
    ``--error-log``, else stderr.

    The handler gets a copy of the log's descriptor: reopening the log
    (SIGUSR1) closes the original, and a handler left with a closed, or
    worse a reused, descriptor would write where it must not.  After a log
    rotation the stacks therefore go to the file as it was when the worker
    started.
    """
    faulthandler.enable(os.dup(_error_log_fd()), all_threads=True)


def _error_log_fd() -> int:
    for logger in (logging.getLogger("dumbwaiter"), logging.getLogger()):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler) and handler.stream is not None:
                return handler.stream.fileno()
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no stderr, or not a file
        return 2


def describe(exc: BaseException) -> str:
    """An exception as one line."""
    return f"{type(exc).__name__}: {exc}"


def reaped() -> Iterator[tuple[int, int]]:
    """The children that have ended, as ``(pid, waitpid status)``."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def describe_exit(status: int) -> str:
    """A ``waitpid`` status in words."""
    code = os.waitstatus_to_exitcode(status)
    return f"exit status {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
