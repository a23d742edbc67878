"""The master: forks the workers, watches them, and turns signals into actions.

The master holds the listening sockets (bound by :mod:`dumbwaiter.main`) and
never accepts on them; every worker inherits them across ``fork`` and runs
:func:`~dumbwaiter.server.worker.run_worker` with its own event loop and
thread pool, and the kernel hands each connection to one of them.  Because
all workers accept on the *same* sockets, a connection waiting in the backlog
is never lost when a worker stops accepting: another takes it.

It is a single-threaded loop around ``select``: signals only queue a number
(their wakeup byte ends the wait), each worker has a pipe to the master
(:mod:`dumbwaiter.server.channel`: ready, heartbeat, retire, failed), and
children are reaped with ``waitpid``.  Each turn handles the signals, reaps,
checks the workers, then brings their number to the target.

Workers and generations
    Every worker belongs to a generation.  SIGHUP starts a new one: new
    workers load the app afresh; once all of them are ready, the older ones
    get SIGTERM and drain.  If a new worker fails before it is ready (a syntax
    error), the reload is abandoned and the old workers go on serving.
Recycling
    A worker that retires (``--max-requests``, ``--max-rss``, ``--timeout``)
    keeps serving until its replacement is ready, then gets SIGTERM.
Failures
    A worker that dies is replaced.  Deaths soon after start back off
    exponentially, and a worker that cannot load the app at start-up, or
    workers that keep dying before they are ready, end the master with
    exit status 1 and the app's error: a broken app never fork-bombs.
    A worker silent for ``HEARTBEAT_SECONDS`` (its loop is blocked) or that
    does not start within ``BOOT_SECONDS`` is killed.

systemd
    With ``NOTIFY_SOCKET`` set, the master reports READY (all workers up),
    RELOADING (SIGHUP) then READY again, and STOPPING, for ``Type=notify``
    and ``Type=notify-reload`` units.

Upgrade in place (SIGUSR2)
    The master forks and executes itself anew (``argv``: the same command
    line, so a new version of dumbwaiter, Python or the app is picked up),
    passing the listening sockets' descriptors in ``DUMBWAITER_INHERIT``
    and its own pid in ``DUMBWAITER_UPGRADE_FROM``.  The new master serves
    the same sockets and, once all its workers are ready, tells systemd its
    pid (``MAINPID``) and sends SIGTERM to the old master, which drains and
    exits without removing the unix socket files or the pid file.  If the
    new master fails, the old one notices its exit and serves on.

Signals (the nginx and gunicorn conventions)
    TERM graceful stop; INT and QUIT fast stop; HUP reload; TTIN and TTOU
    one worker more or less; USR1 reopen log files (forwarded to workers);
    USR2 upgrade in place.  Workers ignore HUP, TTIN, TTOU and USR2: those
    are the master's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..accesslog import AccessLog
from ..config import Config
from ..typing import WSGIApp
from . import systemd
from .channel import WorkerChannel, parse
from .listeners import Listener
from .reloader import SourceWatcher, default_roots
from .stats import Totals, exposition
from .status import METRICS_ROUTES, STATUS_ROUTES, AdminServer, History, Response, page
from .worker import reopen_logs, run_worker

__all__ = ["EXIT_APP_FAILED", "INHERIT_VARIABLE", "UPGRADE_VARIABLE", "AppLoadFailed", "Master"]

log = logging.getLogger("dumbwaiter")

#: How an upgrade in place passes the listening sockets: one line per
#: listener, "PROTOCOL FD ADDRESS"; and the old master's pid.
INHERIT_VARIABLE = "DUMBWAITER_INHERIT"
UPGRADE_VARIABLE = "DUMBWAITER_UPGRADE_FROM"
#: A worker's exit status when the app could not be loaded.
EXIT_APP_FAILED = 3
#: A ready worker silent this long has a blocked event loop: killed.
HEARTBEAT_SECONDS = 30.0
#: A worker not ready this long after its fork is killed.
BOOT_SECONDS = 60.0
#: Beyond graceful_timeout, how long a stopping worker has before SIGKILL.
KILL_GRACE_SECONDS = 5.0
#: How long a fast stop (SIGINT, SIGQUIT) waits before SIGKILL.
FAST_STOP_SECONDS = 3.0
#: A retiring worker whose replacement is not ready after this is stopped anyway.
RETIRE_WAIT_SECONDS = 60.0
#: Deaths within this long of the fork count as failures to start.
QUICK_DEATH_SECONDS = 5.0
#: After this many failures to start in a row, the master gives up.
MAX_START_FAILURES = 5
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0

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
    retiring: str = ""
    retired_at: float = 0.0
    failed: str = ""
    #: When we asked it to stop (0: not yet), and when SIGKILL follows.
    stop_sent: float = 0.0
    kill_at: float = 0.0
    #: Its last --metrics snapshot, and since when all its threads are busy.
    stats: dict[str, Any] | None = None
    busy_since: float = 0.0


class Master:
    """Run ``config.workers`` workers over ``listeners`` until stopped.

    ``load`` imports the app in each new worker; ``app``, when given, was
    loaded in the master already (``--preload``) and is shared by fork.
    ``argv`` is the command that starts this server again (SIGUSR2; None:
    started from Python, no upgrade in place); ``upgrade_from`` the pid of
    the master this one replaces, 0 if none.
    """

    def __init__(
        self,
        config: Config,
        listeners: list[Listener],
        load: Callable[[], WSGIApp],
        app: WSGIApp | None = None,
        *,
        argv: list[str] | None = None,
        upgrade_from: int = 0,
        access_log: AccessLog | None = None,
        admin: dict[str, socket.socket] | None = None,
    ) -> None:
        self.config = config
        self.access_log = access_log
        #: --metrics and --status: kind -> listening socket (served by
        #: :attr:`admin_server` while the loop runs), the sums over the
        #: workers, and the status page's recent past.
        self.admin = admin or {}
        self.admin_server: AdminServer | None = None
        self.totals = Totals()
        self.history = History()
        #: Requests completed by workers that have ended.
        self.served_before = 0
        self.started_at = time.time()
        self.argv = argv
        self.upgrade_from = upgrade_from
        #: The new master of an upgrade under way, and whether it took over.
        self.successor = 0
        self.handed_over = False
        self.listeners = listeners
        self.load = load
        self.app = app
        self.target = config.workers
        self.workers: dict[int, Worker] = {}
        self.signals: deque[int] = deque()
        self.selector = selectors.DefaultSelector()
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
        self._wakeup_r, self._wakeup_w = os.pipe()
        #: --reload: what tells us the app's source changed.
        self.watcher: SourceWatcher | None = None

    # -- the loop --------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped; returns the exit status."""
        os.set_blocking(self._wakeup_r, False)
        os.set_blocking(self._wakeup_w, False)
        self.selector.register(self._wakeup_r, selectors.EVENT_READ)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in MASTER_SIGNALS}
        old_wakeup = signal.set_wakeup_fd(self._wakeup_w)
        if self.admin:
            routes = {"metrics": METRICS_ROUTES, "status": STATUS_ROUTES}
            self.admin_server = AdminServer(
                self.selector,
                [(sock, routes[kind]) for kind, sock in self.admin.items()],
                self.respond,
            )
        if self.config.reload:
            self.watcher = SourceWatcher(default_roots(""))
            if (fd := self.watcher.fileno()) is not None:
                self.selector.register(fd, selectors.EVENT_READ, self.watcher)
            log.info("master: --reload: watching *.py under %s", os.getcwd())
        log.debug("master %d: starting %d worker(s)", self.pid, self.target)
        try:
            while self.workers or not self.stopping:
                self.handle_signals()
                if self.watcher is not None and (changed := self.watcher.changes()):
                    log.info("master: changed: %s: reloading", ", ".join(changed[:3]))
                    self.reload()
                self.reap()
                self.check()
                if not self.stopping:
                    self.adjust()
                self.observe()
                self.wait()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for worker in list(self.workers.values()):  # only after an error of ours
                self.send(worker, signal.SIGKILL)
            if self.watcher is not None:
                self.watcher.close()
            if self.admin_server is not None:
                self.admin_server.close()
            self.selector.close()
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
        if not self.exit_code:
            log.info("master %d: stopped", self.pid)
        return self.exit_code

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def wait(self) -> None:
        now = time.monotonic()
        timeout = 1.0 if self.watcher is None or self.watcher.fileno() is not None else 0.5
        if self.next_spawn > now:
            timeout = min(timeout, self.next_spawn - now)
        for key, mask in self.selector.select(timeout):
            if key.fileobj == self._wakeup_r:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wakeup_r, 512):
                        pass
            elif self.admin_server is not None and self.admin_server.owns(key.data):
                self.admin_server.handle(key.data, mask)
            elif key.data is self.watcher:
                assert self.watcher is not None
                if self.watcher.fileno() is None:  # its helper ended: polled from now on
                    self.selector.unregister(key.fd)
            else:
                self.receive(key.data)

    # -- signals -----------------------------------------------------------
    def handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.popleft()
            if signum == signal.SIGTERM:
                self.stop("graceful")
            elif signum in (signal.SIGINT, signal.SIGQUIT):
                self.stop("fast")
            elif signum == signal.SIGHUP:
                self.reload()
            elif signum == signal.SIGTTIN:
                self.target += 1
                log.info("master: SIGTTIN: %d worker(s) now", self.target)
            elif signum == signal.SIGTTOU:
                self.target = max(1, self.target - 1)
                log.info("master: SIGTTOU: %d worker(s) now", self.target)
            elif signum == signal.SIGUSR1:
                reopen_logs()
                for worker in self.workers.values():
                    self.send(worker, signal.SIGUSR1)
            elif signum == signal.SIGUSR2:
                self.upgrade()

    def stop(self, how: str) -> None:
        if self.stopping == "fast" or self.stopping == how:
            return
        self.stopping = how
        # Stopped while our successor runs: it took over (it sends the TERM).
        self.handed_over = bool(self.successor)
        now = time.monotonic()
        systemd.stopping()
        # Our copies of the listening sockets go now: once the workers close
        # theirs, new connections are refused and the front tries elsewhere.
        for listener in self.listeners:
            listener.sock.close()
        if self.exit_code:
            pass  # fail() said why
        elif how == "graceful":
            log.info(
                "master: stopping gracefully (requests in flight have %gs)",
                self.config.graceful_timeout,
            )
        else:
            log.info("master: stopping now")
        for worker in self.workers.values():
            if how == "fast":
                self.send(worker, signal.SIGQUIT)
                worker.stop_sent = now
                worker.kill_at = now + FAST_STOP_SECONDS
            elif not worker.stop_sent:
                self.terminate(worker)

    def reload(self) -> None:
        if self.stopping:
            return
        self._generations += 1
        self.generation = self._generations
        systemd.reloading(f"reloading: generation {self.generation}")
        if self.app is not None:
            log.info("master: reloading: new workers (--preload: the app is not re-imported)")
        else:
            log.info("master: reloading: new workers load the app afresh")

    def upgrade(self) -> None:
        """SIGUSR2: start a new master on the same sockets (see module doc)."""
        if self.stopping:
            return
        if self.argv is None:
            log.warning("master: SIGUSR2: started from Python, cannot re-execute; use SIGHUP")
            return
        if self.successor:
            log.warning("master: SIGUSR2: upgrade already under way (pid %d)", self.successor)
            return
        lines = []
        handed = [(li.protocol, li.sock, li.address.text) for li in self.listeners]
        # The --metrics and --status sockets too (the new master binds
        # nothing the old one holds).
        handed += [(kind, sock, getattr(self.config, kind)) for kind, sock in self.admin.items()]
        for kind, sock, text in handed:
            os.set_inheritable(sock.fileno(), True)
            lines.append(f"{kind} {sock.fileno()} {text}")
        env = dict(os.environ)
        env[INHERIT_VARIABLE] = "\n".join(lines)
        env[UPGRADE_VARIABLE] = str(self.pid)
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

    # -- workers -------------------------------------------------------------
    def spawn(self) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker; never returns
            os.close(read_fd)
            self._become_worker(write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        worker = Worker(pid, read_fd, self.generation, born=time.monotonic())
        self.workers[pid] = worker
        self.selector.register(read_fd, selectors.EVENT_READ, worker)
        log.debug("master: forked worker %d (generation %d)", pid, self.generation)

    def _become_worker(self, fd: int) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in MASTER_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            for signum in WORKER_IGNORES:
                signal.signal(signum, signal.SIG_IGN)
            self.selector.close()
            for other in self.workers.values():
                os.close(other.fd)
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
            if self.watcher is not None:
                self.watcher.close()  # in a worker: only its copy of the pipe
            for sock in self.admin.values():
                sock.close()
            if self.admin_server is not None:
                self.admin_server.forget()
            channel = WorkerChannel(fd, self.pid)
            app = self.app
            if app is None:
                try:
                    app = self.load()
                except Exception as exc:
                    message = str(exc) if isinstance(exc, AppLoadFailed) else describe(exc)
                    log.debug("loading the app failed", exc_info=True)
                    channel.send("failed", message)
                    code = EXIT_APP_FAILED
                    return
            run_worker(app, self.config, self.listeners, channel, self.access_log)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            log.exception("worker %d crashed", os.getpid())
            code = 1
        finally:
            with contextlib.suppress(Exception):
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def receive(self, worker: Worker) -> None:
        try:
            data = os.read(worker.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.fd)
            return
        worker.buffer += data
        self._handle(worker)

    def _handle(self, worker: Worker) -> None:
        """Act on the complete messages in ``worker``'s buffer."""
        now = time.monotonic()
        for kind, text in parse(worker.buffer):
            worker.last_beat = now
            if kind == "ready":
                worker.ready = True
                self.failures = 0
                log.debug("master: worker %d ready", worker.pid)
            elif kind == "beat":
                served, _, rss = text.partition(" ")
                with contextlib.suppress(ValueError):
                    worker.served, worker.rss = int(served), int(rss)
            elif kind == "retire" and not worker.retiring:
                worker.retiring = text or "asked to"
                worker.retired_at = now
                log.info("master: replacing worker %d: %s", worker.pid, worker.retiring)
                self.totals.restarted(_retire_reason(worker.retiring))
            elif kind == "stats":
                with contextlib.suppress(ValueError):
                    stats = json.loads(text)
                    if isinstance(stats, dict):
                        worker.stats = stats
                        busy = stats.get("gauges", {}).get("busy", 0)
                        if busy < self.config.threads:
                            worker.busy_since = 0.0
                        elif not worker.busy_since:
                            worker.busy_since = now
            elif kind == "failed":
                worker.failed = text

    def drain(self, worker: Worker) -> None:
        """Read what an ended worker left in its pipe."""
        for _ in range(64):
            try:
                data = os.read(worker.fd, 65536)
            except OSError:
                return
            if not data:
                return
            worker.buffer += data
            self._handle(worker)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.successor:
                self.successor = 0
                if not self.stopping:
                    log.error(
                        "master: upgrade failed: the new master %d ended (%s); serving on",
                        pid,
                        describe_status(status),
                    )
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self.drain(worker)  # its last messages (failed, stats ...) may still be there
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(worker.fd)
            os.close(worker.fd)
            self.totals.worker_ended(worker.stats)
            self.served_before += worker.served
            self.exited(worker, status)

    def exited(self, worker: Worker, status: int) -> None:
        how = describe_status(status)
        if worker.stop_sent:
            log.debug("master: worker %d stopped (%s)", worker.pid, how)
            return
        if self.stopping:
            log.info("master: worker %d ended (%s)", worker.pid, how)
            return
        now = time.monotonic()
        self.totals.restarted("died")
        if worker.ready and now - worker.born >= QUICK_DEATH_SECONDS:
            log.error("master: worker %d died (%s); replacing it", worker.pid, how)
            return
        reason = worker.failed or f"worker {worker.pid} ended before it was ready ({how})"
        if worker.ready:
            reason = f"worker {worker.pid} died {now - worker.born:.1f}s after it started ({how})"
        if worker.generation > self.serving_generation and self.started:
            self.abandon_reload(reason)
            return
        if worker.failed and not self.started:
            self.fail(worker.failed)
            return
        self.failures += 1
        if self.failures >= MAX_START_FAILURES:
            self.fail(f"workers keep failing to start ({self.failures} in a row): {reason}")
            return
        delay = min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_MAX)
        self.next_spawn = now + delay
        log.error("master: %s; next worker in %.1fs", reason, delay)

    def abandon_reload(self, reason: str) -> None:
        log.error("master: reload failed: %s; the workers of the previous code serve on", reason)
        failed = self.generation
        self.generation = self.serving_generation
        systemd.ready(f"reload failed: {reason}")
        for worker in self.workers.values():
            if worker.generation == failed and not worker.stop_sent:
                self.terminate(worker)

    def fail(self, message: str) -> None:
        print(f"dumbwaiter: error: {message}", file=sys.stderr, flush=True)
        self.exit_code = 1
        self.stop("fast")

    def check(self) -> None:
        """Kill what is stuck; stop what has been replaced."""
        now = time.monotonic()
        current = [
            w
            for w in self.workers.values()
            if w.generation == self.generation and not w.retiring and not w.stop_sent
        ]
        ready = sum(1 for w in current if w.ready)
        if ready >= self.target and self.generation != self.serving_generation:
            if self.serving_generation:
                log.info("master: reloaded: generation %d serves", self.generation)
            else:
                log.info("master: %d worker(s) ready", ready)
            systemd.ready(f"{ready} worker(s), generation {self.generation}")
            if self.upgrade_from and not self.started:
                log.info("master: upgrade: taking over from master %d", self.upgrade_from)
                systemd.mainpid(self.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.upgrade_from, signal.SIGTERM)
            self.serving_generation = self.generation
            self.started = True
        for worker in list(self.workers.values()):
            if worker.stop_sent:
                if now >= worker.kill_at:
                    log.warning("master: worker %d did not stop in time: killing it", worker.pid)
                    self.send(worker, signal.SIGKILL)
                    worker.kill_at = now + 3600.0
                continue
            if not worker.ready and now - worker.born > BOOT_SECONDS:
                log.error(
                    "master: worker %d not ready after %gs: killing it", worker.pid, BOOT_SECONDS
                )
                self.send(worker, signal.SIGKILL)
                worker.kill_at = now + 3600.0
                worker.stop_sent = now
                self.failures += 1
            elif worker.ready and now - worker.last_beat > HEARTBEAT_SECONDS:
                log.error(
                    "master: worker %d silent for %gs (blocked event loop): killing it",
                    worker.pid,
                    HEARTBEAT_SECONDS,
                )
                self.send(worker, signal.SIGKILL)
                worker.stop_sent = now
                worker.kill_at = now + 3600.0
            elif worker.generation != self.generation or worker.retiring:
                replaced = ready >= self.target and self.serving_generation == self.generation
                overdue = worker.retiring and now - worker.retired_at > RETIRE_WAIT_SECONDS
                if replaced or overdue:
                    if not worker.retiring:
                        self.totals.restarted("reload")
                    self.terminate(worker)

    def adjust(self) -> None:
        """Bring the current generation to ``target`` workers."""
        current = [
            w
            for w in self.workers.values()
            if w.generation == self.generation and not w.retiring and not w.stop_sent
        ]
        missing = self.target - len(current)
        if missing > 0 and time.monotonic() >= self.next_spawn:
            for _ in range(missing if not self.failures else 1):
                self.spawn()
        elif missing < 0:
            newest_first = sorted(current, key=lambda w: (w.ready, -w.born))
            for worker in newest_first[:-missing]:
                self.terminate(worker)

    # -- --metrics and --status ----------------------------------------------
    def respond(self, path: str) -> Response:
        """The answer for ``path`` on a --metrics or --status address (the
        server has checked that the address serves it)."""
        if path == "/healthz":
            healthy, reason = self.health()
            status = "200 OK" if healthy else "503 Service Unavailable"
            return Response(status, "text/plain; charset=utf-8", reason.encode() + b"\n")
        if path == "/metrics":
            live = {pid: w.stats for pid, w in self.workers.items() if w.stats}
            running = sum(1 for w in self.workers.values() if not w.stop_sent)
            body = exposition(self.totals, live, running).encode()
            return Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        if path == "/status.json":
            body = json.dumps(self.status(), separators=(",", ":")).encode()
            return Response("200 OK", "application/json", body)
        return page(path)

    def observe(self) -> None:
        """Drop admin connections past their deadline, and once a second take
        a sample of the workers' sums for the status page."""
        now = time.monotonic()
        if self.admin_server is None:
            return
        self.admin_server.expire(now)
        if not self.history.due(now):
            return
        queued = busy = 0
        for worker in self.workers.values():
            gauges = (worker.stats or {}).get("gauges", {})
            queued += gauges.get("queued", 0)
            busy += gauges.get("busy", 0)
        self.history.sample(now, queued, busy, self.served())

    def served(self) -> int:
        """Requests completed by every worker that ever ran."""
        return self.served_before + sum(w.served for w in self.workers.values())

    def status(self) -> dict[str, Any]:
        """What the status page shows (``/status.json``)."""
        now = time.monotonic()
        healthy, reason = self.health()
        total = self.totals.total(w.stats for w in self.workers.values() if w.stats)
        workers = []
        for worker in sorted(self.workers.values(), key=lambda w: w.born):
            stats = worker.stats or {}
            gauges = stats.get("gauges", {})
            state = "serving"
            if worker.stop_sent:
                state = "stopping"
            elif worker.retiring:
                state = "retiring"
            elif not worker.ready:
                state = "starting"
            workers.append(
                {
                    "pid": worker.pid,
                    "generation": worker.generation,
                    "state": state,
                    "reason": worker.retiring,
                    "age": round(now - worker.born, 1),
                    "served": worker.served,
                    "rss": worker.rss,
                    "threads": gauges.get("threads", self.config.threads),
                    "busy": gauges.get("busy", 0),
                    "queued": gauges.get("queued", 0),
                    "connections": gauges.get("connections", 0),
                    "fds": gauges.get("fds", 0),
                    "inflight": stats.get("inflight", []),
                    "inflight_more": stats.get("inflight_more", 0),
                }
            )
        return {
            "version": __version__,
            "pid": self.pid,
            "started": round(self.started_at, 3),
            "now": round(time.time(), 3),
            "health": {"ok": healthy, "reason": reason},
            "generation": self.serving_generation,
            "target": self.target,
            "listeners": [listener.name for listener in self.listeners],
            "threads": self.config.threads,
            "queue_size": self.config.queue_size,
            "totals": {
                "requests": self.served(),
                "rejected": total["rejected"],
                "bytes_in": total["bytes_in"],
                "bytes_out": total["bytes_out"],
                "restarts": dict(self.totals.restarts),
            },
            "workers": workers,
            "history": self.history.document(),
        }

    def health(self) -> tuple[bool, str]:
        """``/healthz``: serving, or why not (draining, no worker ready, every
        thread busy for ``--health-busy`` seconds): a balancer's cue to
        send the traffic elsewhere for now."""
        if self.stopping:
            return False, "draining"
        serving = [w for w in self.workers.values() if w.ready and not w.stop_sent]
        if not serving:
            return False, "no worker ready"
        now = time.monotonic()
        limit = self.config.health_busy
        if all(w.busy_since and now - w.busy_since >= limit for w in serving):
            return False, f"every thread busy for {limit:g}s"
        return True, f"serving: {len(serving)} worker(s)"

    def terminate(self, worker: Worker) -> None:
        """Ask ``worker`` to stop gracefully; SIGKILL after the grace period."""
        now = time.monotonic()
        self.send(worker, signal.SIGTERM)
        worker.stop_sent = now
        worker.kill_at = now + self.config.graceful_timeout + KILL_GRACE_SECONDS

    def send(self, worker: Worker, signum: int) -> None:
        try:
            os.kill(worker.pid, signum)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise


def _retire_reason(text: str) -> str:
    for option in ("--max-requests", "--max-rss", "--timeout"):
        if option in text:
            return option.removeprefix("--")
    return "retired"


def describe_status(status: int) -> str:
    """A ``waitpid`` status in words."""
    code = os.waitstatus_to_exitcode(status)
    return f"exit status {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"


def describe(exc: BaseException) -> str:
    """An exception as one line."""
    return f"{type(exc).__name__}: {exc}"
