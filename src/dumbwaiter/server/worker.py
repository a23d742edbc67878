"""One serving process: the event loop, its listeners, the thread pool.

:func:`run_worker` takes sockets that are already bound (see
:mod:`dumbwaiter.server.sockets`), serves them until SIGTERM (graceful: stop
accepting, let requests in flight finish within ``graceful_timeout``) or
SIGINT/SIGQUIT (fast), and returns.  A one-second tick refreshes the cached
``Date`` header and closes connections whose timeout passed (one sweep over
the connections is cheaper than a timer per connection).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from ..config import Config
from ..protocols import ServerProtocol
from ..wsgi import WSGIApp, WSGIGateway
from .connection import Connection, Stream
from .pool import ThreadPool
from .sockets import Address

__all__ = ["PROTOCOLS", "Listener", "ServerContext", "run_worker"]

log = logging.getLogger("dumbwaiter")

TICK_SECONDS = 1.0


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

    def refresh_date(self) -> None:
        self.date = email.utils.formatdate(usegmt=True).encode("ascii")


@dataclass(eq=False)
class Listener:
    """A bound socket plus the protocol spoken on it."""

    REFUSED: ClassVar[dict[str, str]] = {}

    protocol: str  # one of PROTOCOLS
    address: Address
    sock: socket.socket
    #: Peers allowed to connect (FCGI_WEB_SERVER_ADDRS); None = anyone.
    allowed: frozenset[str] | None = None

    @property
    def name(self) -> str:
        return f"{self.protocol} {self.address.text}"

    def peer_environ(self, transport: asyncio.BaseTransport) -> dict[str, str]:
        """CGI variables only the socket knows, used where the protocol gave none."""
        if self.sock.family == socket.AF_UNIX:  # the front server says who
            return {}
        peer = transport.get_extra_info("peername")
        if not isinstance(peer, tuple):  # unix socket: the front server says who
            return {}
        if self.allowed is not None and peer[0] not in self.allowed:
            return self.REFUSED
        local = transport.get_extra_info("sockname")
        return {
            "REMOTE_ADDR": peer[0],
            "REMOTE_PORT": str(peer[1]),
            "SERVER_NAME": local[0],
            "SERVER_PORT": str(local[1]),
        }


def protocol_factory(
    kind: str, ctx_date: Callable[[], bytes], config: Config, capacity: int
) -> Callable[[], ServerProtocol]:
    """A zero-argument constructor of the server protocol for one listener."""
    limits = config.limits()
    if kind == "fastcgi":
        from ..protocols.fastcgi import FastCGIServerProtocol

        multiplex = config.fastcgi_multiplex
        roles = config.fastcgi_roles

        def make_fastcgi() -> ServerProtocol:
            return FastCGIServerProtocol(
                limits, max_conns=capacity, max_reqs=capacity, multiplex=multiplex, roles=roles
            )

        return make_fastcgi

    if kind == "scgi":
        from ..protocols.scgi import SCGIServerProtocol

        return lambda: SCGIServerProtocol(limits)
    if kind == "uwsgi":
        from ..protocols.uwsgi import UwsgiServerProtocol

        return lambda: UwsgiServerProtocol(limits)
    from ..protocols.http import HTTPServerProtocol

    def make_http() -> ServerProtocol:
        return HTTPServerProtocol(limits, date=ctx_date)

    return make_http


#: Listener kinds, each a Config field of addresses.
PROTOCOLS = ("fastcgi", "http", "scgi", "uwsgi")


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


def run_worker(app: WSGIApp, config: Config, listeners: list[Listener]) -> None:
    """Serve ``listeners`` until a stop signal; returns when stopped."""
    loop = new_event_loop(config.loop)
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_serve(loop, app, config, listeners))
    finally:
        asyncio.set_event_loop(None)
        loop.close()


async def _serve(
    loop: asyncio.AbstractEventLoop, app: WSGIApp, config: Config, listeners: list[Listener]
) -> None:
    gateway = WSGIGateway(app, config)
    pool: ThreadPool[Stream] = ThreadPool(config.threads, config.queue_size, gateway)
    ctx = ServerContext(loop, config, pool)
    ctx.refresh_date()
    capacity = pool.capacity

    def date() -> bytes:
        return ctx.date

    for kind in {listener.protocol for listener in listeners}:
        ctx.factories[kind] = protocol_factory(kind, date, config, capacity)
    stopping: asyncio.Future[str] = loop.create_future()

    def stop(how: str) -> None:
        if not stopping.done():
            stopping.set_result(how)

    loop.add_signal_handler(signal.SIGTERM, stop, "graceful")
    loop.add_signal_handler(signal.SIGINT, stop, "fast")
    loop.add_signal_handler(signal.SIGQUIT, stop, "fast")
    servers = []
    for listener in listeners:
        server = await loop.create_server(
            lambda listener=listener: Connection(ctx, listener),  # type: ignore[misc]
            sock=listener.sock,
            backlog=config.backlog,
        )
        servers.append(server)
        log.info("listening: %s", listener.name)
    pool.start()
    ticker = loop.create_task(_tick(ctx))
    log.info(
        "ready: %d threads, queue of %d (pid %d)", config.threads, config.queue_size, os.getpid()
    )
    try:
        how = await stopping
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            loop.remove_signal_handler(signum)
    for server in servers:
        server.close()
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


async def _drain(ctx: ServerContext, timeout: float) -> None:
    ctx.draining = True
    deadline = ctx.loop.time() + timeout
    for conn in list(ctx.connections):
        conn.shutdown()
    while any(c.running or c.waiting for c in ctx.connections):
        if ctx.loop.time() >= deadline:
            busy = sum(len(c.running) for c in ctx.connections)
            log.warning("graceful timeout: abandoning %d request(s) in flight", busy)
            return
        await asyncio.sleep(0.05)


async def _tick(ctx: ServerContext) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        ctx.refresh_date()
        now = ctx.loop.time()
        expired = [c for c in ctx.connections if 0.0 < c.deadline <= now]
        for conn in expired:
            conn.timed_out()
