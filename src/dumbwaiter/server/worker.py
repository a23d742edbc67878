"""One serving process: the event loop, its listeners, the thread pool.

:func:`run_worker` takes sockets that are already bound (see
:mod:`dumbwaiter.server.sockets`), serves them until SIGTERM (graceful: stop
accepting, let requests in flight finish within ``graceful_timeout``) or
SIGINT/SIGQUIT (fast), and returns.  A one-second tick refreshes the cached
``Date`` header and closes connections whose timeout passed (one sweep over
the connections is cheaper than a timer per connection).

The same tick watches the worker's own health.  Under a master (see
:mod:`dumbwaiter.server.master`) it sends the heartbeat over the worker's
:class:`~dumbwaiter.server.channel.WorkerChannel`; past ``--max-requests``
or ``--max-rss``, or when a request has been in the app longer than
``--timeout``, the worker *retires*: it asks the master for a replacement
and serves on until the master stops it gracefully.  Without a master it
stops gracefully itself, and its supervisor starts a fresh one.

A request past ``--timeout`` gets its answer at once (504 if the response
has not started, otherwise a broken response the front can tell); its thread
cannot be killed, which is why the whole worker goes.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..access import AddressList
from ..accesslog import AccessLog
from ..config import Config, MiB
from ..protocols import ServerProtocol
from ..request import Request
from ..typing import WSGIApp
from ..wsgi import WSGIGateway
from . import systemd
from .channel import WorkerChannel, resident_bytes
from .connection import Connection, Stream
from .direct import DIRECT_PROTOCOLS, DirectServer, DirectStream
from .listeners import Listener, protocol_factory
from .malloc import give_back_memory
from .pool import ThreadPool
from .stats import WorkerStats, open_fds

__all__ = ["ServerContext", "run_worker"]

log = logging.getLogger("dumbwaiter")

TICK_SECONDS = 1.0
#: --status: requests in flight a worker reports (the oldest), and the
#: characters of each one's path.
INFLIGHT_SHOWN = 50
INFLIGHT_PATH = 200


@dataclass(eq=False)
class ServerContext:
    """What every connection of one process shares (loop-thread state)."""

    loop: asyncio.AbstractEventLoop
    config: Config
    pool: ThreadPool[Stream]
    connections: set[Connection] = field(default_factory=set)
    draining: bool = False
    rejected: int = 0
    accepted: int = 0
    date: bytes = b""
    #: protocol name -> constructor of its server protocol object
    factories: dict[str, Callable[[], ServerProtocol]] = field(default_factory=dict)
    #: Guards the write-side flow control state of every connection.
    flow: threading.Condition = field(default_factory=threading.Condition)
    #: The line to the master, when there is one.
    channel: WorkerChannel | None = None
    #: Why this worker is being replaced ("" while it is not).
    retiring: str = ""
    #: Requests after which to retire (--max-requests plus jitter); 0 = never.
    request_limit: int = 0
    #: Threads lost to requests past --timeout.
    stuck: int = 0
    #: Ends the worker: "graceful" or "fast".
    stop: Callable[[str], None] = field(default=lambda how: None)
    #: --access-log, when on.
    access_log: AccessLog | None = None
    #: --metrics: this worker's counters, sent to the master.
    stats: WorkerStats | None = None
    #: Either of the two: each response is recorded.
    recording: bool = False
    #: What we accept on, and the asyncio servers doing it (none while paused).
    listeners: list[Listener] = field(default_factory=list)
    servers: list[asyncio.AbstractServer] = field(default_factory=list)
    accept_paused: bool = False
    #: --read-ahead: connections whose first request was left unread, oldest
    #: first, and how many were read again but are not parsed yet.
    deferred: deque[Connection] = field(default_factory=deque)
    resuming: int = 0
    #: The body bytes in memory of the requests handed to the threads.
    body_bytes: int = 0
    #: Requests completed at the last tick, and when memory was last given
    #: back (give_back_memory): both as counts of completed requests.
    completed_at_tick: int = 0
    completed_at_trim: int = 0
    #: --direct: the threads serving the gateway listeners themselves.
    direct: DirectServer | None = None

    def served(self) -> int:
        """Requests completed, by the pool's threads and the direct ones."""
        if self.direct is None:
            return self.pool.completed
        return self.pool.completed + self.direct.completed

    def running(self) -> int:
        """Requests owed an answer by a thread, queued or in the app."""
        if self.direct is None:
            return self.pool.pending
        return self.pool.pending + len(self.direct.inflight)

    def reading_room(self) -> int:
        """How many more first requests may be read now: those running or
        queued, and those about to be, stay under ``--threads`` +
        ``--read-ahead``, and their bodies under ``--read-ahead-bytes`` (past
        half of it, one at a time: each may bring a large body)."""
        config = self.config
        room = 1
        if config.read_ahead:
            room = self.pool.threads + config.read_ahead - self.pool.pending - self.resuming
        budget = config.read_ahead_bytes
        if budget and self.body_bytes * 2 > budget:
            if self.body_bytes > budget or self.resuming:
                return 0
            return min(room, 1)
        return room

    def waiting(self) -> int:
        """Requests owed an answer that no thread has yet, wherever they wait;
        with the running ones, at most the pool's capacity (then 503)."""
        return self.pool.pending + len(self.deferred) + self.resuming

    def read_deferred(self, everything: bool = False) -> None:
        """Read on the connections left unread, oldest first, as far as
        :meth:`reading_room` allows (``everything``: all, when stopping)."""
        room = len(self.deferred) if everything else self.reading_room()
        while room > 0 and self.deferred:
            self.deferred.popleft().read_again()
            room -= 1

    async def start_accepting(self) -> None:
        """Serve every listener.  Each server gets a duplicate of the
        listening socket, so that pausing (closing the servers) leaves the
        socket itself open for the next start."""
        for listener in self.listeners:
            server = await self.loop.create_server(
                lambda listener=listener: Connection(self, listener),  # type: ignore[misc]
                sock=listener.sock.dup(),
                backlog=self.config.backlog,
            )
            if self.draining:  # stopped while we were starting
                server.close()
                return
            self.servers.append(server)

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()

    def pause_accepting(self) -> None:
        """``--max-connections`` reached: leave new connections to the kernel's
        backlog (and to the other workers) until some close."""
        if self.accept_paused or self.draining:
            return
        self.accept_paused = True
        self.stop_accepting()
        log.warning(
            "%d connections (--max-connections): not accepting until some close",
            len(self.connections),
        )

    def resume_accepting(self) -> None:
        limit = self.config.max_connections
        if self.draining or len(self.connections) > limit - max(1, limit // 10):
            return
        self.accept_paused = False
        self.loop.create_task(self.start_accepting())
        log.info("%d connections: accepting again", len(self.connections))

    def refresh_date(self) -> None:
        self.date = email.utils.formatdate(usegmt=True).encode("ascii")

    def trim_when_quiet(self) -> None:
        """After a burst, once a whole tick passed with no request running or
        finished, give the memory the burst left back to the kernel."""
        completed = self.served()
        quiet = completed == self.completed_at_tick and not self.running()
        if quiet and completed != self.completed_at_trim and not self.body_bytes:
            give_back_memory()
            self.completed_at_trim = completed
        self.completed_at_tick = completed

    def record(
        self,
        listener: Listener,
        request: Request,
        status_line: str,
        cancelled: bool,
        sent: int,
        connection: str,
        queue_time: float,
    ) -> None:
        """Record a response: the access log line and the metrics (499: the
        client went first).  From the loop, and from --direct's threads."""
        code = status_line[:3]
        status = int(code) if code.isdigit() else 499 if cancelled else 500
        request_time = time.monotonic() - request.arrived if request.arrived else 0.0
        if self.access_log is not None:
            self.access_log.write(
                request.environ,
                status,
                sent,
                listener=listener.name,
                gateway=listener.protocol,
                connection=connection,
                request_time=request_time,
                queue_time=queue_time,
            )
        if self.stats is not None:
            self.stats.count(
                listener.name,
                listener.protocol,
                status,
                request_time,
                queue_time,
                request.length,
                sent,
            )

    def checkup(self) -> None:
        """The heartbeat, and the memory limit (once a tick; the request
        limit is checked as each request ends, in :meth:`Connection.finish`)."""
        served = self.served()
        max_rss = self.config.max_rss * MiB
        rss = resident_bytes() if self.channel is not None or max_rss else 0
        if self.channel is not None:
            if self.channel.orphaned:
                log.warning("the master (pid %d) is gone: stopping", self.channel.master_pid)
                self.stop("graceful")
                return
            self.channel.send("beat", f"{served} {rss}")
            if self.stats is not None:
                self.send_stats(rss)
        if max_rss and rss > max_rss and not self.retiring and give_back_memory():
            rss = resident_bytes()  # what a burst left in malloc is not the worker's growth
        if max_rss and rss > max_rss and not self.retiring:
            self.retire(f"resident memory {rss // MiB} MiB is past --max-rss {max_rss // MiB}")

    def send_stats(self, rss: int) -> None:
        assert self.channel is not None and self.stats is not None
        pool = self.pool
        queued = pool.queued
        busy = max(0, min(pool.threads, pool.pending - queued))
        threads = pool.threads
        if self.direct is not None:
            busy += len(self.direct.inflight)
            threads += len(self.direct.threads)
        snapshot = self.stats.snapshot(
            queued=queued,
            busy=busy,
            threads=threads,
            connections=len(self.connections),
            rss=rss,
            fds=open_fds(),
        )
        if self.config.status:
            snapshot["inflight"], snapshot["inflight_more"] = self.inflight()
        self.channel.send("stats", json.dumps(snapshot, separators=(",", ":")))

    def inflight(self) -> tuple[list[dict[str, Any]], int]:
        """For --status: the oldest requests in flight (method, path without
        the query, client, listener, seconds since dispatch, queued or in
        the app), and how many more there are."""
        now = time.monotonic()
        found: list[dict[str, Any]] = []
        streams: list[tuple[str, Stream | DirectStream]] = [
            (conn.listener.name, stream)
            for conn in self.connections
            for stream in conn.running.values()
        ]
        if self.direct is not None:
            streams.extend((stream.listener.name, stream) for stream in list(self.direct.inflight))
        for listener, stream in streams:
            cgi = stream.request.environ
            path = cgi.get("REQUEST_URI") or cgi.get("SCRIPT_NAME", "") + cgi.get("PATH_INFO", "")
            found.append(
                {
                    "method": cgi.get("REQUEST_METHOD", "")[:16],
                    "path": path.partition("?")[0][:INFLIGHT_PATH],
                    "client": cgi.get("REMOTE_ADDR", ""),
                    "listener": listener,
                    "age": round(now - stream.queued, 3) if stream.queued else 0.0,
                    "state": "app" if stream.began else "queued",
                }
            )
        found.sort(key=lambda item: -item["age"])
        return found[:INFLIGHT_SHOWN], max(0, len(found) - INFLIGHT_SHOWN)

    def retire(self, reason: str) -> None:
        """Have this worker replaced: by the master, or by our own supervisor."""
        if self.retiring:
            return
        self.retiring = reason
        if self.channel is not None and self.channel.send("retire", reason):
            log.info("retiring: %s; serving on until replaced", reason)
            return
        log.info("retiring: %s; stopping", reason)
        self.stop("graceful")

    def hung(self, listener: str, environ: dict[str, str], thread: str) -> None:
        """A request past ``--timeout``: log it; this worker is to go."""
        log.error(
            "%s: %s %s still in the app after %gs: answered 504 (thread %s stuck)",
            listener,
            environ.get("REQUEST_METHOD", ""),
            environ.get("REQUEST_URI") or environ.get("PATH_INFO", ""),
            self.config.timeout,
            thread,
        )
        self.retire(f"a request ran past --timeout {self.config.timeout:g}s")

    def expire_hung(self) -> None:
        """Answer for every request the app has held past ``--timeout``."""
        limit = time.monotonic() - self.config.timeout
        for conn in list(self.connections):
            for stream in list(conn.running.values()):
                if 0.0 < stream.began <= limit:
                    self.hung(conn.listener.name, stream.request.environ, stream.thread)
                    conn.expire(stream)
                    self.stuck += 1
        if self.direct is not None:
            for direct in list(self.direct.inflight):
                if 0.0 < direct.began <= limit and not direct.expired:
                    self.hung(direct.listener.name, direct.request.environ, direct.thread)
                    self.direct.expire(direct)
        if self.stuck >= self.pool.threads and self.pool.capacity:
            # No thread will ever take what waits: answer it now (503, so
            # the front may retry elsewhere), and whatever still comes.
            log.error("every thread is stuck: answering 503 until this worker is replaced")
            self.pool.capacity = 0
            for conn in list(self.connections):
                for stream in list(conn.running.values()):
                    if not stream.began:
                        conn.refuse(stream)


def compiled() -> bool:
    """Whether the request path runs compiled (setup.py, DUMBWAITER_COMPILE=1):
    a mypyc-compiled module is an extension, its ``__file__`` no ``.py``."""
    from .. import request

    return not request.__file__.endswith(".py")


def new_event_loop(choice: str) -> asyncio.AbstractEventLoop:
    """uvloop when asked for or, with ``auto``, when installed."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


def run_worker(
    app: WSGIApp,
    config: Config,
    listeners: list[Listener],
    channel: WorkerChannel | None = None,
    access_log: AccessLog | None = None,
) -> str:
    """Serve ``listeners`` until a stop signal or retirement; returns how it
    stopped: ``"graceful"`` or ``"fast"``."""
    loop = new_event_loop(config.loop)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(loop, app, config, listeners, channel, access_log))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _serve(
    loop: asyncio.AbstractEventLoop,
    app: WSGIApp,
    config: Config,
    listeners: list[Listener],
    channel: WorkerChannel | None,
    access_log: AccessLog | None,
) -> str:
    if config.gzip:
        from ..middleware import DEFAULT_TYPES, Compress

        app = Compress(app, min_size=config.gzip_min_size, types=config.gzip_types or DEFAULT_TYPES)
    gateway = WSGIGateway(
        app,
        debug=config.debug,
        script_name=config.script_name,
        trusted=AddressList(config.forwarded_allow_ips),
        multithread=config.threads > 1,
        multiprocess=config.workers > 1,
    )
    target: Callable[[Stream], None] = gateway
    if config.timeout or access_log is not None or config.metrics or config.status:

        def timed(stream: Stream) -> None:
            stream.began = time.monotonic()
            stream.thread = threading.current_thread().name
            gateway(stream)

        target = timed
    pool: ThreadPool[Stream] = ThreadPool(
        config.threads, config.queue_size, target, batch=not config.no_batch_threads
    )
    ctx = ServerContext(loop, config, pool, channel=channel, access_log=access_log)
    if (config.metrics or config.status) and channel is not None:
        ctx.stats = WorkerStats()
    ctx.recording = ctx.access_log is not None or ctx.stats is not None
    if access_log is not None:
        access_log.pid = os.getpid()
    if config.max_requests:
        ctx.request_limit = config.max_requests + random.randint(0, config.max_requests_jitter)
    ctx.refresh_date()
    capacity = pool.capacity

    def date() -> bytes:
        return ctx.date

    direct = [each for each in listeners if config.direct and each.protocol in DIRECT_PROTOCOLS]
    for kind in {listener.protocol for listener in listeners}:
        ctx.factories[kind] = protocol_factory(kind, date, config, capacity)
    if direct:
        # One request at a time per connection: a thread serves it.
        factories = {
            kind: protocol_factory(kind, date, config, capacity, multiplex=False)
            for kind in {listener.protocol for listener in direct}
        }
        ctx.direct = DirectServer(ctx, direct, gateway, factories)
    stopping: asyncio.Future[str] = loop.create_future()

    def stop(how: str) -> None:
        if not stopping.done():
            stopping.set_result(how)

    ctx.stop = stop
    loop.add_signal_handler(signal.SIGTERM, stop, "graceful")
    loop.add_signal_handler(signal.SIGINT, stop, "fast")
    loop.add_signal_handler(signal.SIGQUIT, stop, "fast")
    loop.add_signal_handler(signal.SIGUSR1, reopen_logs, access_log)
    ctx.listeners = [listener for listener in listeners if listener not in direct]
    await ctx.start_accepting()
    for listener in listeners:
        log.info("listening: %s%s", listener.name, " (direct)" if listener in direct else "")
    pool.start()
    if ctx.direct is not None:
        ctx.direct.start()
    ticker = loop.create_task(_tick(ctx))
    log.info(
        "ready: %d threads, queue of %d (pid %d)%s",
        config.threads,
        config.queue_size,
        os.getpid(),
        ", compiled" if compiled() else "",
    )
    if channel is not None:
        channel.send("ready")
    else:  # this process is the server: systemd hears from it (Type=notify)
        systemd.ready(f"serving, pid {os.getpid()}")
    try:
        how = await stopping
    finally:
        # A second TERM/INT/QUIT acts at once; USR1 (reopen the logs, which
        # the master forwards to draining workers too) keeps its handler.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            loop.remove_signal_handler(signum)
    if channel is None:
        systemd.stopping()
    ctx.draining = True
    ctx.stop_accepting()
    if ctx.direct is not None:
        ctx.direct.stop()
    for listener in ctx.listeners:  # our last descriptor of each: new connections go elsewhere
        listener.sock.close()
    if how == "graceful":
        log.info("stopping: finishing requests in flight (up to %gs)", config.graceful_timeout)
        await _drain(ctx, config.graceful_timeout)
    else:
        log.info("stopping now")
    ticker.cancel()
    for conn in list(ctx.connections):
        if conn.transport is not None:
            conn.transport.abort()
    await asyncio.sleep(0)
    pool.stop(timeout=0.1 if how == "fast" else 1.0)
    if ctx.direct is not None and ctx.direct.join(0.0 if how == "fast" else 1.0):
        for listener in direct:  # no thread waits in accept() on them any more
            listener.sock.close()
    if access_log is not None:
        access_log.flush()
    if ctx.stats is not None:
        ctx.send_stats(resident_bytes())  # the last word: the master adds it up
    return how


def reopen_logs(access_log: AccessLog | None = None) -> None:
    """SIGUSR1: reopen every log file we write (after logrotate moved it)."""
    if access_log is not None:
        try:
            access_log.reopen()
        except OSError as exc:
            log.error("cannot reopen the access log %s: %s", access_log.path, exc.strerror)
    for logger in (logging.getLogger(), logging.getLogger("dumbwaiter")):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                    handler.stream = handler._open()
                finally:
                    handler.release()
    log.info("log files reopened")


async def _drain(ctx: ServerContext, timeout: float) -> None:
    ctx.draining = True
    deadline = ctx.loop.time() + timeout
    # A connection accepted in the loop's turn that took the stop is made a
    # callback later: let it join ctx.connections first, or it would find
    # the worker gone and lose its request (Connection.connection_made
    # gives it the drain's grace).
    await asyncio.sleep(0)
    ctx.read_deferred(everything=True)  # accepted before we stopped: served
    for conn in list(ctx.connections):
        conn.shutdown()
    # Every connection closes by itself: after its response, or by the tick
    # once its grace ran out (see Connection.shutdown).
    while ctx.connections or (ctx.direct is not None and ctx.direct.alive()):
        if ctx.loop.time() >= deadline:
            busy = sum(len(c.running) for c in ctx.connections)
            if ctx.direct is not None:
                busy += len(ctx.direct.inflight)
            log.warning("graceful timeout: abandoning %d request(s) in flight", busy)
            return
        await asyncio.sleep(0.05)


async def _tick(ctx: ServerContext) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        ctx.refresh_date()
        now = ctx.loop.time()
        expired = []
        for conn in list(ctx.connections):
            if 0.0 < conn.deadline <= now:
                expired.append(conn)
            conn.check_writes(now)
        for conn in expired:
            conn.timed_out()
        if ctx.direct is not None:
            ctx.direct.check_writes(time.monotonic())
        if ctx.config.timeout:
            ctx.expire_hung()
        if ctx.deferred:  # room freed by connections that closed unread
            ctx.read_deferred()
        ctx.checkup()
        ctx.trim_when_quiet()
        if ctx.access_log is not None:
            ctx.access_log.flush()
