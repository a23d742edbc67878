"""The arbiter: forks the workers, watches them, and turns signals into actions.

The master holds the listening sockets (bound by :mod:`dumbwaiter.main`) and
never accepts on them; every worker inherits them across ``fork`` and runs
:func:`~dumbwaiter.server.worker.run_worker`: a connection in the backlog is
never lost when a worker stops accepting, another takes it.

A single-threaded loop around ``select``: signal handlers only queue
(:mod:`~dumbwaiter.process.signals`), and the loop dispatches each to a
``handle_<name>()`` method; each worker has a pipe to the master
(:mod:`dumbwaiter.server.channel`).  Each turn: handle the signals, reap
the workers, kill the hung ones, promote a generation that is ready, stop
the replaced ones, bring the number to the target (:mod:`.elastic` may move
it), then wait.

Reloads (SIGHUP)
    The settings are read again (:mod:`.reconfigure`), and a new generation
    loads the app afresh; once it is ready the old one drains.  A new worker
    that fails before it is ready abandons the reload.
Recycling
    A worker that retires (``--max-requests``, ``--max-rss``,
    ``--max-lifetime``, ``--timeout``) serves on until replaced.
Failures (:mod:`.deaths`)
    A dead worker is replaced; quick deaths back off, and end the master at
    start-up: a broken app never fork-bombs.
Hung workers
    A blocked loop (no heartbeat), a worker that does not start or outlives a
    stop: SIGABRT, its stacks to the error log, then SIGKILL.
Signals (nginx's and gunicorn's conventions; docs/processes.md)
    TERM graceful stop; INT, QUIT fast stop; HUP reload; TTIN, TTOU one
    worker more or less; USR1 reopen the logs; USR2 upgrade in place.
    systemd hears READY, RELOADING, STOPPING; :mod:`dumbwaiter.hooks` run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable

from ..hooks import HookError
from ..server import systemd
from ..server.worker import reopen_logs
from .child import (
    ABORT_GRACE_SECONDS,
    EXIT_APP_FAILED,
    MASTER_SIGNALS,
    AppLoadFailed,
    Setup,
    Worker,
    describe_exit,
    fork_worker,
    reaped,
)
from .deaths import ABANDON_RELOAD, ENDED, FAIL, RETRY, judge
from .elastic import elastic_for
from .reconfigure import Reread, reconfigured
from .reloader import Watching
from .signals import SignalQueue
from .status import Monitor
from .upgrade import Upgrade

__all__ = ["EXIT_APP_FAILED", "AppLoadFailed", "Arbiter"]

log = logging.getLogger("dumbwaiter")

#: Beyond graceful_timeout, how long a stopping worker has before SIGABRT.
STOP_GRACE_SECONDS = 5.0
#: How long a fast stop (SIGINT, SIGQUIT) waits before SIGABRT.
FAST_STOP_SECONDS = 3.0
#: A retiring worker whose replacement is not ready after this is stopped anyway.
RETIRE_WAIT_SECONDS = 60.0


class Arbiter:
    """Run ``setup.config.workers`` workers, each forked with ``setup``,
    until stopped.

    ``argv`` is the command that starts this server again (SIGUSR2; None:
    started from Python, no upgrade in place); ``upgrade_from`` the pid of
    the master this one replaces, 0 if none.  ``admin``: the ``--metrics``
    and ``--status`` sockets by kind (the caller's to close).  ``reread``
    reads the settings again, on SIGHUP (None: they stay).
    """

    def __init__(
        self,
        setup: Setup,
        *,
        argv: list[str] | None = None,
        upgrade_from: int = 0,
        admin: dict[str, socket.socket] | None = None,
        reread: Reread | None = None,
    ) -> None:
        self.setup = setup
        self.config = config = setup.config
        self.listeners = listeners = setup.listeners
        self.hooks = setup.hooks
        self.reread = reread
        self.log = log  # (for the hooks, as gunicorn's arbiter has it)
        self.target = config.workers
        self.elastic = elastic_for(config)
        self.spawned = 0  # workers forked: the next one's age
        self.workers: dict[int, Worker] = {}
        self.monitor = Monitor(config, self, [li.name for li in listeners], admin or {})
        self.upgrade = Upgrade(argv, upgrade_from)
        #: Stopped while our successor ran: it took over (and sent the TERM).
        self.handed_over = False
        #: Each signal's handle_<name>() (built once: a missing one fails here).
        self.handlers: dict[int, Callable[[], None]] = {
            signum: getattr(self, f"handle_{signum.name[3:].lower()}") for signum in MASTER_SIGNALS
        }
        self.selector = selectors.DefaultSelector()
        self.signals = SignalQueue(self.selector, MASTER_SIGNALS)
        #: The generation new workers join, and the last one fully ready.
        self.generation = 1
        self.serving_generation = 0
        self._generations = 1
        self.started = False  # every first-generation worker came up once
        self.failures = 0  # failures to start in a row
        self.next_spawn = 0.0
        self.stopping = ""  # "", "graceful" or "fast"
        self.exit_code = 0
        self.pid = os.getpid()
        #: --reload: what tells us the app's source changed.
        self.watching: Watching | None = None

    # -- the loop -------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped; returns the exit status."""
        self.signals.install()
        try:
            self._start()
            while self.workers or not self.stopping:
                self.handle_signals()
                self.watch_sources()
                self.reap_workers()
                now = time.monotonic()
                self.kill_hung_workers(now)
                self.promote_generation()
                self.stop_replaced_workers(now)
                if not self.stopping:
                    self.manage_workers(now)
                self.monitor.tick(now)
                self.wait()
        finally:
            self.signals.restore()
            self._finish()
            self.hooks.call("on_exit", self)
        if not self.exit_code:
            log.info("master %d: stopped", self.pid)
        return self.exit_code

    @property
    def num_workers(self) -> int:
        return self.target

    def _start(self) -> None:
        """Serve the admin sockets, watch the sources."""
        try:
            self.hooks.call_at_start("on_starting", self)
        except HookError as exc:
            self.fail(str(exc))
            return
        self.monitor.start(self.selector)
        if self.config.reload:
            self.watching = Watching(self.selector)
            log.info("master: --reload: watching *.py under %s", os.getcwd())
        log.debug("master %d: starting %d worker(s)", self.pid, self.target)

    def _finish(self) -> None:
        for worker in list(self.workers.values()):  # only after an error of ours
            worker.send(signal.SIGKILL)
        if self.watching is not None:
            self.watching.close()
        self.monitor.close()
        self.selector.close()
        self.signals.close()

    def wait(self) -> None:
        now = time.monotonic()
        timeout = self.watching.timeout() if self.watching is not None else 1.0
        if self.next_spawn > now:
            timeout = min(timeout, self.next_spawn - now)
        for key, mask in self.selector.select(timeout):
            if key.data is self.signals:
                self.signals.clear_wakeup()
            elif self.monitor.owns(key.data):
                self.monitor.handle(key.data, mask)
            elif isinstance(key.data, Watching):
                key.data.readable(key.fd)
            else:
                self.receive(key.data)

    def watch_sources(self) -> None:
        """--reload: a changed source file starts a new generation."""
        if self.watching is not None and (changed := self.watching.changes()):
            log.info("master: changed: %s: reloading", ", ".join(changed[:3]))
            self.reload()

    # -- signals -----------------------------------------------------------
    def handle_signals(self) -> None:
        for signum in self.signals.take():
            self.handlers[signum]()

    def handle_term(self) -> None:
        self.stop("graceful")

    def handle_int(self) -> None:
        self.stop("fast")

    handle_quit = handle_int

    def handle_hup(self) -> None:
        self.reload()

    def handle_ttin(self) -> None:
        self.resize(self.target + 1, "SIGTTIN")

    def handle_ttou(self) -> None:
        self.resize(max(1, self.target - 1), "SIGTTOU")

    def resize(self, count: int, why: str) -> None:
        """Serve with ``count`` workers from now on."""
        old, self.target = self.target, count
        log.info("master: %s: %d worker(s) now", why, count)
        self.monitor.resized(why)
        if count != old:
            self.hooks.call("nworkers_changed", self, count, old)

    def handle_usr1(self) -> None:
        reopen_logs()
        for worker in self.workers.values():
            worker.send(signal.SIGUSR1)

    def handle_usr2(self) -> None:
        if not self.stopping:
            self.upgrade.start(self.listeners, self.monitor.sockets, self.config)

    def handle_chld(self) -> None:
        """Nothing: its wakeup byte ended the wait, and the loop reaps."""

    def stop(self, how: str) -> None:
        if self.stopping == "fast" or self.stopping == how:
            return
        self.stopping = how
        self.handed_over = bool(self.upgrade.successor)
        now = time.monotonic()
        systemd.stopping()
        # Our copies of the listening sockets go now: once the workers close
        # theirs, new connections are refused and the front tries elsewhere.
        for listener in self.listeners:
            listener.sock.close()
        if how == "fast" and not self.exit_code:  # else fail() said why
            log.info("master: stopping now")
        elif how == "graceful":
            grace = self.config.graceful_timeout
            log.info("master: stopping gracefully (requests in flight have %gs)", grace)
        for worker in self.workers.values():
            if worker.stop_signal in (signal.SIGABRT, signal.SIGKILL):
                continue  # being killed already
            if how == "fast":
                worker.signal(signal.SIGQUIT, FAST_STOP_SECONDS, now)
            elif not worker.stop_sent:
                self.terminate(worker, now)

    def reload(self) -> None:
        if self.stopping:
            return
        self._generations += 1
        self.generation = self._generations
        systemd.reloading(f"reloading: generation {self.generation}")
        if self.reread is not None and (new := reconfigured(self.setup, self.reread)):
            self.reconfigure(new)
        self.hooks.call("on_reload", self)
        preloaded = self.setup.app is not None
        how = "(--preload: the app is not re-imported)" if preloaded else "load the app afresh"
        log.info("master: reloading: new workers %s", how)

    def reconfigure(self, setup: Setup) -> None:
        """The next generation's settings (see :func:`reconfigured`)."""
        if setup.config.workers != self.config.workers:  # (else TTIN/TTOU's count stays)
            self.resize(setup.config.workers, "reload")
        self.setup, self.hooks = setup, setup.hooks
        self.config = self.monitor.config = setup.config
        self.elastic = elastic_for(setup.config)

    # -- workers -------------------------------------------------------------
    def spawn_worker(self) -> None:
        self.spawned += 1
        worker = fork_worker(self.setup, self.generation, self.spawned, self._release, self)
        self.workers[worker.pid] = worker
        self.selector.register(worker.fd, selectors.EVENT_READ, worker)
        log.debug("master: forked worker %d (generation %d)", worker.pid, self.generation)

    def _release(self) -> None:
        """In a new worker: close what is the master's."""
        self.selector.close()
        for other in self.workers.values():
            os.close(other.fd)
        self.signals.close()
        if self.watching is not None:
            self.watching.close()  # in a worker: only its copy of the pipe
        self.monitor.forget()

    def receive(self, worker: Worker) -> None:
        data = worker.read()
        if data == b"":  # its end; reaped soon
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.fd)
        elif data is not None:
            self.hear(worker, data)

    def hear(self, worker: Worker, data: bytes) -> None:
        for news in worker.take(data, time.monotonic(), self.config.threads):
            if news == "ready":
                self.failures = 0
                log.debug("master: worker %d ready", worker.pid)
            elif news == "retire":
                log.info("master: replacing worker %d: %s", worker.pid, worker.retiring)
                self.monitor.restarted(worker.retire_reason)

    def reap_workers(self) -> None:
        for pid, status in reaped():
            if self.upgrade.ended(pid, describe_exit(status), bool(self.stopping)):
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue  # the --reload helper (see reloader.py)
            for data in worker.read_rest():  # its last messages (failed, stats ...)
                self.hear(worker, data)
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.fd)
            os.close(worker.fd)
            self.monitor.worker_ended(worker)
            self.exited(worker, status)
            self.hooks.call("child_exit", self, worker.info)

    def exited(self, worker: Worker, status: int) -> None:
        """Act on the verdict on a worker that ended (:mod:`.deaths`)."""
        now = time.monotonic()
        verdict = judge(worker, describe_exit(status), now, self)
        if verdict.action != ENDED:
            self.monitor.restarted("died")
        if verdict.action == ABANDON_RELOAD:
            self.abandon_reload(verdict.reason)
        elif verdict.action == FAIL:
            self.fail(verdict.reason)
        else:
            if verdict.action == RETRY:
                self.failures += 1
                self.next_spawn = now + verdict.delay
            log.log(verdict.level, "master: %s", verdict.reason)

    def abandon_reload(self, reason: str) -> None:
        log.error("master: reload failed: %s; the workers of the previous code serve on", reason)
        failed = self.generation
        self.generation = self.serving_generation
        systemd.ready(f"reload failed: {reason}")
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.generation == failed and not worker.stop_sent:
                self.terminate(worker, now)

    def fail(self, message: str) -> None:
        print(f"dumbwaiter: error: {message}", file=sys.stderr, flush=True)
        self.exit_code = 1
        self.stop("fast")

    def kill_hung_workers(self, now: float) -> None:
        """Abort a worker whose loop is blocked, that does not start, or that
        outlived a stop; kill one that outlived SIGABRT (:meth:`Worker.due`)."""
        for worker in list(self.workers.values()):
            if (due := worker.due(now)) is None:
                continue
            signum, why = due
            doing = "killing it" if signum == signal.SIGKILL else "aborting it"
            log.error("master: worker %d %s: %s", worker.pid, why, doing)
            if not worker.ready and not worker.stop_sent:
                self.failures += 1  # it did not start
            worker.signal(signum, ABORT_GRACE_SECONDS, now)

    def promote_generation(self) -> None:
        """Once the current generation has all its workers ready, it serves
        (and, in an upgrade in place, the old master goes)."""
        ready = sum(1 for w in self._current() if w.ready)
        if ready < self.target or self.generation == self.serving_generation:
            return
        if self.serving_generation:
            log.info("master: reloaded: generation %d serves", self.generation)
        else:
            log.info("master: %d worker(s) ready", ready)
            try:
                self.hooks.call_at_start("when_ready", self)
            except HookError as exc:
                self.fail(str(exc))
                return
        systemd.ready(f"{ready} worker(s), generation {self.generation}")
        if not self.started:
            self.upgrade.take_over()
        self.serving_generation = self.generation
        self.started = True

    def stop_replaced_workers(self, now: float) -> None:
        """Stop the workers of older generations once the current one serves,
        and retiring workers once replaced (or when waiting took too long)."""
        replaced = self.serving_generation == self.generation
        replaced = replaced and sum(1 for w in self._current() if w.ready) >= self.target
        for worker in list(self.workers.values()):
            if worker.stop_sent or (worker.generation == self.generation and not worker.retiring):
                continue
            overdue = worker.retiring and now - worker.retired_at > RETIRE_WAIT_SECONDS
            if replaced or overdue:
                if not worker.retiring:
                    self.monitor.restarted("reload")
                self.terminate(worker, now)

    def manage_workers(self, now: float) -> None:
        """Bring the current generation to ``target`` workers (which the
        elastic policy may change first)."""
        current = self._current()
        if self.elastic and (change := self.elastic.decide(now, current, self.target)):
            self.resize(*change)
        missing = self.target - len(current)
        if missing > 0 and now >= self.next_spawn:
            for _ in range(missing if not self.failures else 1):
                self.spawn_worker()
        elif missing < 0:
            newest_first = sorted(current, key=lambda w: (w.ready, -w.born))
            for worker in newest_first[:-missing]:
                self.terminate(worker, now)

    def _current(self) -> list[Worker]:
        """The workers of the current generation that are to go on serving."""
        return [
            w
            for w in self.workers.values()
            if w.generation == self.generation and not w.retiring and not w.stop_sent
        ]

    def terminate(self, worker: Worker, now: float) -> None:
        """Ask ``worker`` to stop gracefully; SIGABRT after the grace period."""
        worker.signal(signal.SIGTERM, self.config.graceful_timeout + STOP_GRACE_SECONDS, now)
