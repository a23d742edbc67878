"""The event loop's side of a worker: its listeners, its connections, and
the thread pool they hand requests to.

:class:`LoopServer` accepts on the listeners the loop serves (pausing past
``--max-connections``), makes each connection's session, keeps the
read-ahead and 503 bounds (:class:`~.admission.Admission`), takes over kept
connections an application thread served first (:meth:`LoopServer.adopt`),
and does the loop's part of the worker's once-a-second duties behind the
:class:`~.context.Driver` interface: deadlines, stalled writes,
``--timeout``, a graceful stop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from .admission import Admission
from .connection import Connection, Host, LoopExchange
from .exchange import ExchangeBase
from .pool import ThreadPool
from .session import Session

if TYPE_CHECKING:
    from .context import ServerContext
    from .listeners import Listener

__all__ = ["LoopServer"]

log = logging.getLogger("dumbwaiter")


class LoopServer(Host):
    """The connections the event loop serves (see the module doc).  Loop thread only."""

    def __init__(self, ctx: ServerContext, listeners: list[Listener]) -> None:
        config = ctx.config
        self.ctx = ctx
        self.loop = ctx.loop
        self.settings = ctx.settings
        self.listeners = listeners
        self.pool: ThreadPool[ExchangeBase] = ctx.pool
        self.admission = Admission(
            ctx.pool,
            read_ahead=config.read_ahead,
            read_ahead_bytes=config.read_ahead_bytes,
            timed=ctx.timed,
        )
        self.connections: set[Connection] = set()
        #: Guards the write-side flow control state of every connection.
        self.flow = threading.Condition()
        self.write_buffer = config.write_buffer
        self.max_connections = config.max_connections
        self.backlog = config.backlog
        #: The asyncio servers accepting (none while paused).
        self.servers: list[asyncio.AbstractServer] = []
        self.accept_paused = False
        self.draining = False
        #: Connections accepted so far (each one's number, for the logs).
        self.accepted = 0
        #: Threads lost to requests past --timeout.
        self.stuck = 0

    # -- accepting --------------------------------------------------------------------
    async def start(self) -> None:
        """Serve every listener.  Each server gets a duplicate of the
        listening socket, so that pausing (closing the servers) leaves the
        socket itself open for the next start."""
        for listener in self.listeners:
            server = await self.loop.create_server(
                self.factory(listener),
                sock=listener.sock.dup(),
                backlog=self.backlog,
            )
            if self.draining:  # stopped while we were starting
                server.close()
                return
            self.servers.append(server)

    def factory(
        self, listener: Listener, session: Session | None = None
    ) -> Callable[[], asyncio.Protocol]:
        """What asyncio calls to make a connection's protocol: a
        :class:`Connection`, which is one by its methods, not by its base
        class (see its docstring)."""

        def make() -> Connection:
            return Connection(self, listener, session)

        return cast("Callable[[], asyncio.Protocol]", make)

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()

    def new_session(self, conn: Connection, listener: Listener) -> Session:
        ctx = self.ctx
        # (listener, gateway, peer, settings, reporter: positional, one
        # connection per request behind lighttpd)
        proto = ctx.factories[listener.protocol]()
        return Session(
            proto, conn, listener.name, listener.protocol, {}, self.settings, ctx.reporter
        )

    def refused(self, listener: Listener, peer: object) -> None:
        log.warning(
            "%s: refused connection from %s (not an allowed web server)", listener.name, peer
        )

    def joined(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.accepted += 1
        # Which connection a request came on: for logs, and for checking that
        # front servers reuse their connections (a handed-over one keeps its own).
        conn.session.peer.setdefault("dumbwaiter.connection", str(self.accepted))
        if len(self.connections) >= self.max_connections:
            self.pause_accepting()

    def left(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self.accept_paused:
            self.resume_accepting()

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
        limit = self.max_connections
        if self.draining or len(self.connections) > limit - max(1, limit // 10):
            return
        self.accept_paused = False
        self.loop.create_task(self.start())
        log.info("%d connections: accepting again", len(self.connections))

    def adopt(self, sock: socket.socket, session: Session, listener: Listener) -> None:
        """Serve from now on a kept connection that an application thread
        served first (loop thread)."""
        if self.draining:
            sock.close()
            return
        sock.setblocking(False)
        self.loop.create_task(
            self.loop.connect_accepted_socket(self.factory(listener, session), sock)
        )

    # -- requests ---------------------------------------------------------------------
    def done(self, exchange: ExchangeBase) -> None:
        """The application is done with ``exchange`` (before its session
        moves on: the freed thread may take the next request at once)."""
        self.admission.release(exchange)
        if self.ctx.request_limit:
            self.ctx.count_served()

    # -- the Driver interface (the tick's) --------------------------------------------
    def served(self) -> int:
        return self.pool.served

    def owed(self) -> int:
        return self.pool.pending

    def in_flight(self) -> list[ExchangeBase]:
        return [exchange for conn in self.connections for exchange in conn.session.running.values()]

    def gauges(self) -> tuple[int, int, int, int]:
        """(queued, busy, threads, connections)."""
        pool = self.pool
        queued = pool.queued
        return (
            queued,
            max(0, min(pool.threads, pool.pending - queued)),
            pool.threads,
            len(self.connections),
        )

    def sweep(self) -> None:
        """Close the connections whose deadline passed; drop those whose peer
        stopped reading; read on what room freed."""
        now = time.monotonic()
        expired = []
        for conn in list(self.connections):
            deadline = conn.session.deadline
            if 0.0 < deadline <= now:
                expired.append(conn)
            conn.check_writes(now)
        for conn in expired:
            conn.session.timed_out()
        if self.admission.deferred:  # room freed by connections that closed unread
            self.admission.read_deferred()

    def expire(self, exchange: ExchangeBase) -> None:
        """``--timeout`` passed for ``exchange``: answered now, its thread lost."""
        assert isinstance(exchange, LoopExchange)
        exchange.session.expire(exchange)
        self.stuck += 1
        if self.stuck >= self.pool.threads and self.pool.capacity:
            # No thread will ever take what waits: answer it now (503, so
            # the front may retry elsewhere), and whatever still comes.
            log.error("every thread is stuck: answering 503 until this worker is replaced")
            self.pool.capacity = 0
            for waiting in self.in_flight():
                if not waiting.began:
                    assert isinstance(waiting, LoopExchange)
                    waiting.session.answer_busy(waiting)

    def stop(self) -> None:
        """Accept no more; close our last descriptor of each listener, so that
        new connections go to the other workers."""
        self.draining = True
        self.stop_accepting()
        for listener in self.listeners:
            listener.sock.close()

    def drain(self) -> None:
        """Graceful stop: what was accepted is served, idle connections close."""
        self.admission.read_deferred(everything=True)
        for conn in list(self.connections):
            conn.shutdown()

    def finished(self) -> bool:
        return not self.connections

    def busy(self) -> int:
        return sum(len(conn.session.running) for conn in self.connections)

    def abort(self) -> None:
        """Stop now: every connection is cut."""
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
