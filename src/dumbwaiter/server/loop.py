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
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from ..asgi.gateway import ASGIExchange, ASGIGateway
from .admission import Admission
from .connection import Connection, Host, LoopExchange
from .exchange import ExchangeBase
from .pool import FREE, ThreadPool
from .session import Session
from .static import StaticFiles

if TYPE_CHECKING:
    from ..request import Request
    from .context import ServerContext
    from .listeners import Listener

__all__ = ["LoopServer"]

log = logging.getLogger("dumbwaiter")


class LoopServer(Host):
    """The connections the event loop serves (see the module doc).  Loop thread only."""

    def __init__(
        self, ctx: ServerContext, listeners: list[Listener], shared: list[Listener]
    ) -> None:
        config = ctx.config
        self.ctx = ctx
        self.loop = ctx.loop
        self.settings = ctx.settings
        self.listeners = listeners
        #: The listeners the pool's threads accept on, which the loop takes
        #: over while no thread is free (see direct.py).
        self.shared = shared
        #: Whether the loop accepts on them now; guarded by ``overflow_lock``.
        self.overflowing = False
        self.overflow_lock = threading.Lock()
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
        #: Connections handed over by the threads, not joined yet.
        self.adopting = 0
        #: Threads lost to requests past --timeout.
        self.stuck = 0
        self.static = StaticFiles(config.static) if config.static else None
        #: Set by the worker for an ASGI application.
        self.asgi: ASGIGateway | None = None

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
        self,
        listener: Listener,
        session: Session | None = None,
        handed: list[Request] | None = None,
    ) -> Callable[[], asyncio.Protocol]:
        """What asyncio calls to make a connection's protocol: a
        :class:`Connection`, which is one by its methods, not by its base
        class (see its docstring)."""

        def make() -> Connection:
            return Connection(self, listener, session, handed)

        return cast("Callable[[], asyncio.Protocol]", make)

    def stop_accepting(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()
        self.stop_taking_over()

    # -- the shared listeners, while no thread is free ---------------------------------
    def full(self) -> None:
        """No application thread is free to accept (any thread): accept on
        the shared listeners from the loop until one is."""
        with self.overflow_lock:
            if self.overflowing:
                return
            self.overflowing = True
        self.loop.call_soon_threadsafe(self.take_over_shared)

    def take_over_shared(self) -> None:
        if self.leave_to_threads():
            return
        for listener in self.shared:
            self.loop.add_reader(listener.sock.fileno(), self.take_over, listener)

    def leave_to_threads(self) -> bool:
        """Stop taking over (and say so) when a thread is free to accept,
        or the loop may not accept (stopping, ``--max-connections``)."""
        with self.overflow_lock:
            if not self.overflowing:
                return True
            if (
                FREE not in self.pool.state
                and not self.draining
                and len(self.connections) < self.max_connections
            ):
                return False
        self.stop_taking_over()
        return True

    def stop_taking_over(self) -> None:
        with self.overflow_lock:
            self.overflowing = False
        for listener in self.shared:
            with contextlib.suppress(ValueError, OSError):  # (closed)
                self.loop.remove_reader(listener.sock.fileno())

    def take_over(self, listener: Listener) -> None:
        """A connection waits on a shared listener, and no thread is free:
        the loop serves it (its request queued, or answered 503)."""
        if self.leave_to_threads():
            return
        try:
            sock, _ = listener.sock.accept()
        except (BlockingIOError, InterruptedError):  # a thread took it
            return
        except OSError as exc:  # EMFILE and the like: the threads retry
            log.error("%s: accept failed: %s", listener.name, exc)
            self.stop_taking_over()
            return
        sock.setblocking(False)
        self.loop.create_task(self.loop.connect_accepted_socket(self.factory(listener), sock))

    def new_session(self, conn: Connection, listener: Listener) -> Session:
        ctx = self.ctx
        # (listener, gateway, peer, settings, reporter: positional, one
        # connection per request behind lighttpd)
        proto = ctx.factories[listener.protocol]()
        return Session(
            proto, conn, listener.name, listener.protocol, {}, self.settings, ctx.reporter
        )

    def joined(self, conn: Connection) -> None:
        if not conn.fresh:
            self.adopting -= 1
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

    def adopt(
        self, sock: socket.socket, session: Session, listener: Listener, handed: list[Request]
    ) -> None:
        """Serve from now on a connection an application thread took first:
        kept after its first request, or slow to send it; and run
        ``handed`` (loop thread).  Stopping, it is served as the others
        are (Session.drain)."""
        sock.setblocking(False)
        self.adopting += 1
        self.loop.create_task(self.take_in(sock, self.factory(listener, session, handed)))

    async def take_in(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol]) -> None:
        try:
            await self.loop.connect_accepted_socket(factory, sock)
        except OSError as exc:  # (the connection_made that counts it is not called)
            self.adopting -= 1
            sock.close()
            log.info("a connection handed to the loop was lost: %s", exc)

    # -- requests ---------------------------------------------------------------------
    def done(self, exchange: ExchangeBase) -> None:
        """The application is done with ``exchange`` (before its session
        moves on: the freed thread may take the next request at once)."""
        self.admission.release(exchange)
        if self.ctx.request_limit:
            self.ctx.count_served()

    # -- the Driver interface (the tick's) --------------------------------------------
    def served(self) -> int:
        asgi = self.asgi
        return self.pool.served + (asgi.served if asgi is not None else 0)

    def owed(self) -> int:
        asgi = self.asgi
        return self.pool.pending + (len(asgi.running) if asgi is not None else 0)

    def asgi_done(self) -> None:
        """An ASGI request ended (its task)."""
        if self.ctx.request_limit:
            self.ctx.count_served()

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
        if self.asgi is not None and self.asgi.cancelled:
            self.asgi.check_cancelled(now)
        if self.admission.deferred:  # room freed by connections that closed unread
            self.admission.read_deferred()

    def expire(self, exchange: ExchangeBase) -> None:
        """``--timeout`` passed for ``exchange``: answered now, its thread
        lost (an ASGI request's task is cancelled)."""
        if isinstance(exchange, ASGIExchange):
            exchange.session.expire(exchange)
            assert self.asgi is not None
            self.asgi.cancel(exchange)
            return
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
        return not self.connections and not self.adopting

    def busy(self) -> int:
        return sum(len(conn.session.running) for conn in self.connections)

    def abort(self) -> None:
        """Stop now: every connection is cut."""
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
