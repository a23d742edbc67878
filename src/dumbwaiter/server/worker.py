"""One serving process: its event loop, its drivers, its thread pool; and
how it starts and stops.

:func:`run_worker` takes sockets that are already bound (see
:mod:`dumbwaiter.server.sockets`), serves them until SIGTERM (graceful: stop
accepting, let requests in flight finish within ``--graceful-timeout``) or
SIGINT/SIGQUIT (fast), and returns.  It builds the parts and wires them
together; what a request goes through is theirs:

* :class:`~.loop.LoopServer`: the listeners the event loop serves, and any
  kept connection the threads hand over;
* :class:`~.direct.DirectServer` (unless ``--loop-only``): what the pool's
  threads do between the loop's requests: accept and serve the gateway
  listeners' connections themselves;
* :class:`~.pool.ThreadPool`: the application threads;
* :class:`~.watch.Watch`: the once-a-second duties (deadlines, ``--timeout``,
  the heartbeat to the master, recycling limits);
* :class:`~.reporting.Reporter`: the access log and the metrics.

Under a master the worker *retires* (asks to be replaced, serving on until
it is) past ``--max-requests``, ``--max-rss`` or ``--timeout``; without one
it stops gracefully, and its supervisor starts a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable

from ..access import AddressList
from ..accesslog import AccessLog
from ..asgi.detect import ASGIApp, asgi3, interface_of
from ..asgi.gateway import ASGIGateway
from ..asgi.handshake import WebSocketSettings
from ..asgi.lifespan import Lifespan, LifespanFailed
from ..config import Config
from ..typing import Exchange, WSGIApp
from ..version import build as which_build
from ..wsgi import WSGIGateway
from . import systemd
from .channel import WorkerChannel, resident_bytes
from .context import ServerContext
from .deadlines import SessionSettings
from .direct import DIRECT_PROTOCOLS, DirectServer
from .exchange import ExchangeBase
from .listeners import Listener, protocol_factory
from .loop import LoopServer
from .pool import ThreadPool
from .reporting import Reporter
from .stats import WorkerStats
from .watch import Watch

__all__ = ["compiled", "reopen_logs", "run_worker"]

log = logging.getLogger("dumbwaiter")


def compiled() -> bool:
    """Whether the request path runs compiled (see version.build)."""
    return which_build() == "compiled"


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
    interrupted: Callable[[], None] | None = None,
) -> str:
    """Serve ``listeners`` until a stop signal or retirement; returns how it
    stopped: ``"graceful"`` or ``"fast"``.  ``interrupted`` is called on
    SIGINT or SIGQUIT (the ``worker_int`` hook), before the fast stop."""
    loop = new_event_loop(config.loop)
    asyncio.set_event_loop(loop)
    try:
        serving = _serve(loop, app, config, listeners, channel, access_log, interrupted)
        return loop.run_until_complete(serving)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def gateway_for(app: WSGIApp, config: Config) -> Callable[[Exchange], None]:
    """The WSGI gateway over ``app`` (compressed with ``--gzip``), as the
    settings say."""
    if config.gzip:
        from ..middleware import DEFAULT_TYPES, Compress

        app = Compress(app, min_size=config.gzip_min_size, types=config.gzip_types or DEFAULT_TYPES)
    return WSGIGateway(
        app,
        debug=config.debug,
        script_name=config.script_name,
        trusted=AddressList(config.forwarded_allow_ips),
        multithread=config.threads > 1,
        multiprocess=config.workers > 1,
    )


def asgi_gateway(app: ASGIApp, config: Config, limit: int) -> ASGIGateway:
    """The ASGI gateway over ``app`` (compressed with ``--gzip``), with its
    lifespan, as the settings say."""
    if config.gzip:
        from ..middleware import DEFAULT_TYPES, CompressASGI

        types = config.gzip_types or DEFAULT_TYPES
        app = CompressASGI(app, min_size=config.gzip_min_size, types=types)
    return ASGIGateway(
        app,
        limit=limit,
        trusted=AddressList(config.forwarded_allow_ips),
        script_name=config.script_name,
        debug=config.debug,
        lifespan=Lifespan(app, config.lifespan, config.graceful_timeout),
        websocket=WebSocketSettings(
            max_size=config.ws_max_size,
            ping_interval=config.ws_ping_interval,
            ping_timeout=config.ws_ping_timeout,
            compression=not config.ws_no_compression,
        ),
    )


def session_settings(config: Config) -> SessionSettings:
    """What sessions read per request."""
    return SessionSettings(
        keepalive_timeout=config.keepalive_timeout,
        read_timeout=config.read_timeout,
        header_timeout=config.header_timeout,
        min_body_rate=config.min_body_rate,
        write_timeout=config.write_timeout,
        spool_threshold=config.spool_threshold,
    )


def build(
    loop: asyncio.AbstractEventLoop,
    app: WSGIApp,
    config: Config,
    listeners: list[Listener],
    channel: WorkerChannel | None,
    access_log: AccessLog | None,
) -> tuple[ServerContext, LoopServer, DirectServer | None, Watch]:
    """The worker's parts, wired together, not started."""
    interface = interface_of(app, config.interface)
    gateway = gateway_for(app, config) if interface == "wsgi" else None
    stats = WorkerStats() if (config.metrics or config.status) and channel is not None else None
    reporter = Reporter(access_log, stats) if access_log is not None or stats is not None else None
    if access_log is not None:
        access_log.pid = os.getpid()
    timed = bool(config.timeout or config.status or reporter is not None)

    def target(exchange: ExchangeBase) -> None:
        """An application thread takes a request up."""
        if exchange.cancelled:  # answered for already (503, aborted): not for the app
            exchange.end()  # (frees the thread's slot on the loop)
            return
        if timed:
            exchange.began = time.monotonic()
            exchange.thread = threading.current_thread().name
        assert gateway is not None
        gateway(exchange)

    pool: ThreadPool[ExchangeBase] = ThreadPool(
        config.threads, config.queue_size, target, batch=not config.no_batch_threads
    )
    ctx = ServerContext(loop, config, pool, session_settings(config), reporter, channel)
    if config.max_requests:
        ctx.request_limit = config.max_requests + random.randint(0, config.max_requests_jitter)

    def date() -> bytes:
        return ctx.date

    for kind in {listener.protocol for listener in listeners}:
        ctx.factories[kind] = protocol_factory(kind, date, config, pool.capacity)
    shared = (
        []
        if config.loop_only or gateway is None  # (an ASGI app runs on the loop)
        else [listener for listener in listeners if listener.protocol in DIRECT_PROTOCOLS]
    )
    own = [listener for listener in listeners if listener not in shared]
    looped = LoopServer(ctx, own, shared)
    ctx.drivers.append(looped)
    if gateway is None:
        looped.asgi = asgi_gateway(asgi3(app, interface), config, pool.capacity)
        looped.asgi.done = looped.asgi_done
        ctx.asgi = looped.asgi
    threads = None
    if shared:
        assert gateway is not None
        threads = DirectServer(ctx, shared, gateway, looped.adopt)
        ctx.drivers.append(threads)
        pool.full = looped.full
    return ctx, looped, threads, Watch(ctx, reporter, access_log, stats)


async def _serve(
    loop: asyncio.AbstractEventLoop,
    app: WSGIApp,
    config: Config,
    listeners: list[Listener],
    channel: WorkerChannel | None,
    access_log: AccessLog | None,
    interrupted: Callable[[], None] | None,
) -> str:
    ctx, looped, threads, watch = build(loop, app, config, listeners, channel, access_log)
    stopping: asyncio.Future[str] = loop.create_future()

    def stop(how: str) -> None:
        if not stopping.done():
            stopping.set_result(how)

    def interrupt() -> None:  # SIGINT, SIGQUIT
        if interrupted is not None and not stopping.done():
            interrupted()
        stop("fast")

    ctx.stop = stop
    loop.add_signal_handler(signal.SIGTERM, stop, "graceful")
    loop.add_signal_handler(signal.SIGINT, interrupt)
    loop.add_signal_handler(signal.SIGQUIT, interrupt)
    loop.add_signal_handler(signal.SIGUSR1, reopen_logs, access_log)
    lifespan = looped.asgi.lifespan if looped.asgi is not None else None
    if lifespan is not None:
        try:
            await lifespan.startup()
        except LifespanFailed as exc:  # the worker does not serve: the master says why
            if channel is None:
                raise
            log.error("%s", exc)
            channel.send("failed", str(exc))
            return "fast"
    await looped.start()
    for listener in listeners:
        log.info("listening: %s", listener.name)
    if config.direct:
        log.info("--direct: what it asked for is the default now (see --loop-only)")
    if threads is not None:
        threads.start()
    if looped.asgi is None:  # (an ASGI app runs on the loop: no thread to start)
        ctx.pool.start()
    ticker = loop.create_task(watch.tick())
    log.info(
        "ready: %s, queue of %d (pid %d)%s",
        f"{config.threads} threads" if looped.asgi is None else "ASGI",
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
    await _stop(ctx, how, ticker)
    if lifespan is not None:
        await lifespan.shutdown()
    if threads is not None:  # (the pool's threads are gone, or left to the process's end)
        for listener in threads.listeners:
            listener.sock.close()
    if access_log is not None:
        access_log.flush()
    if watch.stats is not None:
        watch.send_stats(resident_bytes())  # the last word: the master adds it up
    return how


async def _stop(ctx: ServerContext, how: str, ticker: asyncio.Task[None]) -> None:
    """Accept no more; finish what is in flight (graceful), or not (fast)."""
    if ctx.channel is None:
        systemd.stopping()
    ctx.draining = True
    for driver in ctx.drivers:
        driver.stop()
    if how == "graceful":
        timeout = ctx.config.graceful_timeout
        log.info("stopping: finishing requests in flight (up to %gs)", timeout)
        await _drain(ctx, timeout)
    else:
        log.info("stopping now")
    ticker.cancel()
    for driver in ctx.drivers:
        driver.abort()
    await asyncio.sleep(0)
    ctx.pool.stop(timeout=0.1 if how == "fast" else 1.0)


async def _drain(ctx: ServerContext, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    # A connection accepted in the loop's turn that took the stop is made a
    # callback later: let it join first, or it would find the worker gone
    # and lose its request (Connection.connection_made gives it the drain's
    # grace).
    await asyncio.sleep(0)
    for driver in ctx.drivers:
        driver.drain()
    # Every connection closes by itself: after its response, or by the tick
    # once its grace ran out (see Session.drain).
    while not all(driver.finished() for driver in ctx.drivers):
        if time.monotonic() >= deadline:
            busy = sum(driver.busy() for driver in ctx.drivers)
            log.warning("graceful timeout: abandoning %d request(s) in flight", busy)
            return
        await asyncio.sleep(0.05)


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
