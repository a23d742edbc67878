"""The event loop's driver: one connection's transport, its session, and the
hand-off to the application threads.

Only the loop thread touches the transport and the session.  A complete
request goes to the pool as a :class:`LoopExchange`; the application thread
answers through it, and its calls come back to the loop only through
``loop.call_soon_threadsafe`` (one crossing each way; a third, waited for,
for ``sendfile``).  Everything that decides (which answer, which deadline,
what is logged) is the :class:`~dumbwaiter.server.session.Session`'s: this
module moves bytes, and implements the session's
:class:`~dumbwaiter.server.session.Wire` over an asyncio transport.

Backpressure goes both ways: the session pauses reading while pipelined
requests wait, and the application's writes wait while the transport is
paused (past ``--write-buffer``) or while more than that many bytes are on
their way to it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import IO, TYPE_CHECKING, cast

from ..asgi.gateway import ASGIGateway
from ..request import Request
from .admission import Admission
from .deadlines import SessionSettings
from .exchange import ExchangeBase
from .session import Session
from .sockets import reset_on_close
from .static import StaticExchange, StaticFiles, Upgraded

if TYPE_CHECKING:
    from .listeners import Listener

__all__ = ["Connection", "Host", "LoopExchange"]


class Host:
    """What a connection needs of the server that accepted it: the base of
    :class:`~.loop.LoopServer` (a base class, not a protocol: compiled, a
    call through it is a direct call)."""

    loop: asyncio.AbstractEventLoop
    #: Guards every connection's write-side flow control state.
    flow: threading.Condition
    write_buffer: int
    settings: SessionSettings
    admission: Admission
    draining: bool
    #: ``--static``'s files, served on the loop (HTTP listeners; None: none).
    static: StaticFiles | None
    #: The ASGI application's gateway (None: a WSGI one, run by the threads).
    asgi: ASGIGateway | None

    def new_session(self, conn: Connection, listener: Listener) -> Session:
        raise NotImplementedError

    def joined(self, conn: Connection) -> None:
        raise NotImplementedError

    def left(self, conn: Connection) -> None:
        raise NotImplementedError

    def done(self, exchange: ExchangeBase) -> None:
        """The application is done with an exchange it was admitted for."""
        raise NotImplementedError


class LoopExchange(ExchangeBase):
    """A request served from the event loop: the application thread's
    :class:`~dumbwaiter.typing.Exchange`, whose calls run on the loop."""

    __slots__ = ("conn", "session")
    # Set by Connection.dispatch, which makes it (no __init__ of its own: a
    # call fewer per request).
    conn: Connection
    session: Session

    # -- the application thread --------------------------------------------------
    def start(self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool) -> None:
        conn = self.conn
        if body and not end:
            conn.wait_writable(len(body))
        conn.loop.call_soon_threadsafe(conn.on_start, self, status, headers, body, end)

    def write(self, data: bytes) -> bool:
        """Queue ``data``; waits while the client is slow.  False: client gone."""
        if self.cancelled:
            return False
        conn = self.conn
        conn.wait_writable(len(data))
        conn.loop.call_soon_threadsafe(conn.on_body, self, data)
        return not self.cancelled

    def end(self) -> None:
        self.conn.loop.call_soon_threadsafe(self.conn.on_end, self)

    def abort(self) -> None:
        self.conn.loop.call_soon_threadsafe(self.conn.on_abort, self)

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        """The loop's sendfile, when the protocol frames the body raw."""
        if self.cancelled:
            return False
        conn = self.conn
        future = asyncio.run_coroutine_threadsafe(
            conn.send_file(self, file, offset, count), conn.loop
        )
        return future.result()

    # -- any thread ----------------------------------------------------------------
    def cancel(self) -> None:
        super().cancel()
        self.conn.wake_writers()


class Connection:
    """One accepted connection on the loop: the session's wire, and an
    asyncio protocol (by its methods: asyncio and uvloop ask no base class
    of a protocol, and one from outside would make the compiled class carry
    a ``__dict__``)."""

    # Plain values start as class attributes: one is built per connection
    # (per request, behind lighttpd), and an instance only stores what changes.
    transport: asyncio.Transport | None = None
    #: Write-stall watch: bytes handed to the transport, and how many of
    #: them had left it at the last progress, and when that was.
    written = 0
    flushed = 0
    flushed_at = 0.0
    #: No byte read yet: the first ones may be left unread (``--read-ahead``),
    #: then the connection waits in the admission's queue with them in ``unread``.
    fresh = True
    deferred = False
    unread = b""
    #: (An adopted connection's: the requests its thread left to us.)
    handed: list[Request]
    _paused = False
    _queued = 0
    #: What a loop-side writer awaits while the transport is paused.
    _drained: asyncio.Future[None] | None = None

    def __init__(
        self,
        server: Host,
        listener: Listener,
        session: Session | None = None,
        handed: list[Request] | None = None,
    ) -> None:
        self.server = server
        self.listener = listener
        self.loop = server.loop
        #: Given when an application thread hands the connection over (its
        #: peer known already), with the requests it leaves to us.
        if session is None:
            session = server.new_session(self, listener)
        else:
            self.fresh = False
            self.handed = handed or []
        self.session = session
        #: Once the connection is a WebSocket, what takes its bytes and events
        #: (set here: compiled, a class-level default of a protocol type is not).
        self.upgraded: Upgraded | None = None
        # Write-side flow control, shared with the application threads.  One
        # condition serves every connection of the process (a waiter rechecks
        # its own connection's state), so accepting costs no lock creation.
        self._flow: threading.Condition = server.flow
        self._limit = server.write_buffer

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        if self.fresh:
            listener = self.listener
            peer = listener.peer_environ(
                None if listener.unix else transport.get_extra_info("peername"),
                lambda: transport.get_extra_info("sockname"),
            )
            if peer is None:  # (logged)
                self.transport.abort()
                self.transport = None
                self.session.closed = True
                return
            self.session.peer = peer
            self.session.fresh(time.monotonic(), server.settings)
        # The transport pauses us (pause_writing) past the configured mark.
        self.transport.set_write_buffer_limits(high=self._limit)
        server.joined(self)
        if not self.fresh:
            handed, self.handed = self.handed, []
            self.session.adopted(self, server.settings, handed)
        if server.draining:  # accepted as the stop came: served, within the grace
            self.shutdown()

    def data_received(self, data: bytes) -> None:
        if self.fresh:
            self.fresh = False
            if self.server.admission.should_defer():
                self.defer(data)
                return
        upgraded = self.upgraded
        if upgraded is not None:
            upgraded.receive_data(data)
            return
        self.session.receive(data)

    def eof_received(self) -> bool | None:
        session = self.session
        if session.lingering:
            return False
        if self.upgraded is not None:
            self.upgraded.eof()
            return False
        if self.deferred:  # a client that half-closed: its request is whole
            self.deferred = False
            self.server.admission.forget(self)
            data, self.unread = self.unread, b""
            session.receive(data)
        return session.eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.left(self)
        if self.deferred:
            self.deferred = False
            self.server.admission.forget(self)
        self.transport = None
        try:
            self.session.lost()
            if self.upgraded is not None:
                self.upgraded.lost()
        finally:
            # Wake the writers waiting on this connection, if any can be: one
            # waits only while paused or past the mark (both lowered only by the
            # loop thread, this one), and none starts now that the transport is gone.
            if self._paused or self._queued > self._limit:
                with self._flow:
                    self._paused = False
                    self._flow.notify_all()
            self.wake_drained()

    def pause_writing(self) -> None:
        with self._flow:
            self._paused = True

    def resume_writing(self) -> None:
        with self._flow:
            self._paused = False
            self._flow.notify_all()
        self.wake_drained()

    @property
    def write_paused(self) -> bool:
        return self._paused and self.transport is not None

    @property
    def gone(self) -> bool:
        """The transport is closing or closed: what is written is dropped (an
        application that never yields would not see ``connection_lost``)."""
        transport = self.transport
        return transport is None or transport.is_closing()

    async def drained(self) -> None:
        """(Loop thread) Wait while the transport is paused; every writer of
        the connection (a multiplexed one has several) waits on one future."""
        while self._paused and self.transport is not None:
            if self._drained is None:
                self._drained = self.loop.create_future()
            await self._drained

    def wake_drained(self) -> None:
        waiter = self._drained
        if waiter is not None:
            self._drained = None
            if not waiter.done():
                waiter.set_result(None)

    # -- read-ahead (see admission.py) ---------------------------------------------
    def defer(self, data: bytes) -> None:
        """Enough requests are read ahead of the threads: leave this
        connection's first one unparsed and stop reading (its further bytes
        wait in the kernel) until a thread frees (read_again)."""
        assert self.transport is not None
        self.deferred = True
        self.unread = data
        self.session.hold()
        self.transport.pause_reading()
        self.server.admission.defer(self)

    def read_again(self) -> None:
        """Out of the deferred queue: parse what was read, from the loop's
        next turn (not inside the callback of the request that made room)."""
        self.deferred = False
        self.server.admission.resuming += 1
        self.loop.call_soon(self.read_unread)

    def read_unread(self) -> None:
        self.server.admission.resuming -= 1
        data, self.unread = self.unread, b""
        if self.transport is not None:
            self.transport.resume_reading()
            self.session.receive(data)

    # -- the session's wire ----------------------------------------------------------
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None:
            self.written += len(data)
            transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def linger(self) -> None:
        """Our side ends after the answer; what the peer still sends is read
        and dropped until the session's deadline (the tick closes then)."""
        transport = self.transport
        if transport is None:
            return
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()

    def reset(self) -> None:
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            reset_on_close(sock)
        transport.abort()

    def dispatch(self, request: Request) -> ExchangeBase | None:
        session = self.session
        static = self.server.static
        if static is not None and self.listener.protocol == "http":
            found = static.find(request)
            if found is not None:  # a file: the loop answers, no thread
                served = StaticExchange(request, session.peer, session.listener)
                self.loop.create_task(static.serve(self, served, found))
                return served
        asgi = self.server.asgi
        if asgi is not None:  # a task on this loop (None: 503, the app not called)
            return asgi.dispatch(self, request)
        exchange = LoopExchange(request, session.peer, session.listener)
        exchange.conn = self
        exchange.session = session
        return exchange if self.server.admission.admit(exchange) else None

    # -- responses (called on the loop by LoopExchange) --------------------------------
    def on_start(
        self,
        exchange: ExchangeBase,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
        end: bool,
    ) -> None:
        if body and not end:
            self.release(len(body))
        if end:
            self.server.done(exchange)
        self.session.send_head(exchange, status, headers, body, end)

    def on_body(self, exchange: ExchangeBase, data: bytes) -> None:
        self.release(len(data))
        self.session.send_body(exchange, data)

    def on_end(self, exchange: ExchangeBase) -> None:
        self.server.done(exchange)
        self.session.send_end(exchange)

    def on_abort(self, exchange: ExchangeBase) -> None:
        self.server.done(exchange)
        self.session.send_abort(exchange)

    async def send_file(
        self, exchange: ExchangeBase, file: IO[bytes], offset: int, count: int
    ) -> bool:
        # Asked here, on the loop, after on_start: the protocol's framing of
        # this response is known only once its head has been built.
        if self.transport is None or not self.session.raw_body_ok(exchange):
            return False
        try:
            await self.loop.sendfile(self.transport, file, offset, count)
            exchange.sent += count
        except NotImplementedError:  # uvloop: the gateway iterates the file instead
            return False
        except (ConnectionError, OSError):
            exchange.cancel()
            return False
        return True

    # -- flow control (application threads) ------------------------------------------
    def wait_writable(self, size: int) -> None:
        """Block the calling application thread while the client is slow."""
        limit = self._limit
        with self._flow:
            while (self._paused or self._queued > limit) and self.transport is not None:
                self._flow.wait()
            self._queued += size

    def release(self, size: int) -> None:
        with self._flow:
            self._queued -= size
            if self._queued <= self._limit:
                self._flow.notify_all()

    def wake_writers(self) -> None:
        with self._flow:
            self._flow.notify_all()

    # -- the tick's (loop thread) ---------------------------------------------------------
    def check_writes(self, now: float) -> None:
        """Drop the connection if its peer has taken nothing of what we wrote
        for ``--write-timeout``."""
        transport = self.transport
        if transport is None:
            return
        flushed = self.written - transport.get_write_buffer_size()
        if flushed != self.flushed or flushed == self.written or not self.flushed_at:
            self.flushed = flushed
            self.flushed_at = now
        elif self.session.write_stalled(self.flushed_at, now):
            self.reset()

    def shutdown(self) -> None:
        """Graceful stop (see :meth:`Session.drain`); a WebSocket is told
        the server is going away."""
        if self.upgraded is not None:
            self.upgraded.going_away()
            return
        if self.transport is not None and self.session.drain():
            self.transport.close()
