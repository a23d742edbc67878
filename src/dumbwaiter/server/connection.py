"""One client connection: the asyncio glue between a socket, a sans-IO
protocol and the application threads.

This module owns the thread boundary.  Only the loop thread touches the
transport and the protocol object.  The loop hands a complete request to the
pool (:class:`~dumbwaiter.server.pool.ThreadPool`); the application thread
answers through its :class:`Stream`, whose methods come back to the loop only
through ``loop.call_soon_threadsafe``.  Backpressure goes both ways: the
application's writes wait while the transport is paused or while more than
``write_buffer`` bytes are on their way to it.

The connection never asks which protocol it speaks: it reacts to the events of
:mod:`dumbwaiter.protocols.events` and answers with the response calls of the
:class:`~dumbwaiter.protocols.ServerProtocol` contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, cast

from ..protocols import (
    BodyReceived,
    FilterDataReceived,
    RemoteProtocolError,
    RequestAborted,
    RequestComplete,
    RequestReceived,
    ServerProtocol,
)
from ..request import Request

if TYPE_CHECKING:
    from .listeners import Listener
    from .worker import ServerContext

__all__ = ["Connection", "Stream"]

log = logging.getLogger("dumbwaiter")

#: How long a connection we are closing because of a protocol error may keep
#: sending before we stop reading (the peer should see our answer, not RST).
LINGER_SECONDS = 2.0

#: On a graceful stop, how long a connection that has sent no request yet
#: may take to send one.
DRAIN_GRACE = 1.0

#: SO_LINGER on, zero seconds: close() sends RST instead of FIN.
LINGER_ZERO = struct.pack("ii", 1, 0)

BUSY_HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "1")]
BUSY_BODY = b"503 Service Unavailable: the server is busy, retry shortly\n"
TIMEOUT_HEADERS = [("Content-Type", "text/plain; charset=utf-8")]
TIMEOUT_BODY = b"504 Gateway Timeout: the application did not answer in time\n"


def reset_on_close(sock: Any) -> None:
    """Have the socket's close end the connection abnormally: a reset on
    TCP (a zero linger time); unix sockets have none.  ``sock``: a socket,
    or the loop's stand-in for one (uvloop's PseudoSocket; Any, since the
    compiled build checks a declared type at the call)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)


def peer_name(peer: dict[str, str]) -> str:
    """``address:port`` of a connection's peer, for log lines ("peer" on a
    unix socket)."""
    address = peer.get("REMOTE_ADDR")
    return f"{address}:{peer.get('REMOTE_PORT', '')}" if address else "peer"


class Stream:
    """One request in flight: the application thread's handle on its response.

    The ``start``/``write``/``end``/``abort``/``sendfile`` methods are called
    from the application thread; everything they do to the connection happens
    on the loop thread.  ``cancelled`` turns true when the client or the front
    server gave up: writes are then dropped and the gateway stops iterating.
    """

    __slots__ = (
        "_loop",
        "began",
        "cancelled",
        "conn",
        "logged",
        "queued",
        "request",
        "sent",
        "started",
        "status",
        "thread",
    )

    def __init__(self, conn: Connection, request: Request) -> None:
        self.conn = conn
        self.request = request
        self.cancelled = False
        self._loop = conn.ctx.loop
        #: When an application thread took it up (time.monotonic(); set only
        #: with --timeout), and which thread.
        self.began = 0.0
        self.thread = ""
        #: The response head went out (loop thread).
        self.started = False
        #: For the access log: when it was queued for a thread
        #: (time.monotonic()), its status line, body bytes sent, logged yet.
        self.queued = 0.0
        self.status = ""
        self.sent = 0
        self.logged = False

    @property
    def peer(self) -> dict[str, str]:
        return self.conn.peer

    # -- application thread ------------------------------------------------
    def start(self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool) -> None:
        if body and not end:
            self.conn.wait_writable(len(body))
        self._loop.call_soon_threadsafe(self.conn.on_start, self, status, headers, body, end)

    def write(self, data: bytes) -> bool:
        """Queue ``data``; waits while the client is slow.  False: client gone."""
        if self.cancelled:
            return False
        self.conn.wait_writable(len(data))
        self._loop.call_soon_threadsafe(self.conn.on_body, self, data)
        return not self.cancelled

    def end(self) -> None:
        self._loop.call_soon_threadsafe(self.conn.on_end, self)

    def abort(self) -> None:
        self._loop.call_soon_threadsafe(self.conn.on_abort, self)

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        """Send ``count`` bytes of ``file`` from ``offset`` with the loop's
        sendfile when the protocol frames the body raw; False when it cannot
        (the caller then iterates the file)."""
        if self.cancelled:
            return False
        future = asyncio.run_coroutine_threadsafe(
            self.conn.send_file(self, file, offset, count), self._loop
        )
        return future.result()

    # -- loop thread -------------------------------------------------------
    def cancel(self) -> None:
        self.cancelled = True
        self.request.abort_input()
        self.conn.wake_writers()


class Connection(asyncio.Protocol):
    """The loop-side state of one accepted connection."""

    # Plain values start as class attributes: one is built per connection
    # (per request, behind lighttpd), and an instance only stores what changes.
    transport: asyncio.Transport | None = None
    deadline = 0.0
    #: What the deadline is for (the log line when it passes).
    waiting_for = ""
    #: When the head being received began (0: none is).
    head_since = 0.0
    #: Write-stall watch: bytes handed to the transport, and how many of
    #: them had left it at the last progress, and when that was.
    written = 0
    flushed = 0
    flushed_at = 0.0
    requests = 0  # dispatched on this connection so far
    lingering = False
    #: No byte read yet: the first ones may be left unread (``--read-ahead``),
    #: then the connection waits in ``ctx.deferred`` with them in ``unread``.
    fresh = True
    deferred = False
    unread = b""
    #: A peer error waiting for the responses owed before it to go out.
    pending_error: RemoteProtocolError | None = None
    _paused = False
    _queued = 0

    def __init__(self, ctx: ServerContext, listener: Listener) -> None:
        self.ctx = ctx
        self.listener = listener
        self.proto: ServerProtocol = ctx.factories[listener.protocol]()
        self.peer: dict[str, str] = {}
        self.receiving: dict[int, Request] = {}
        self.running: dict[int, Stream] = {}
        self.waiting: deque[Request] = deque()
        # Write-side flow control, shared with the application threads.  One
        # condition serves every connection of the process (a waiter rechecks
        # its own connection's state), so accepting costs no lock creation.
        self._flow = ctx.flow

    # -- asyncio.Protocol ----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        listener = self.listener
        peer = listener.peer_environ(
            None if listener.unix else transport.get_extra_info("peername"),
            lambda: transport.get_extra_info("sockname"),
        )
        if peer is None:
            log.warning(
                "%s: refused connection from %s (not an allowed web server)",
                self.listener.name,
                transport.get_extra_info("peername"),
            )
            self.transport.abort()
            self.transport = None
            return
        self.peer = peer
        # The transport pauses us (pause_writing) past the configured mark.
        self.transport.set_write_buffer_limits(high=self.ctx.config.write_buffer)
        ctx = self.ctx
        ctx.connections.add(self)
        ctx.accepted += 1
        if len(ctx.connections) >= ctx.config.max_connections:
            ctx.pause_accepting()
        # Which connection a request came on: for logs, and for checking that
        # front servers reuse their connections.
        self.peer["dumbwaiter.connection"] = str(ctx.accepted)
        self.deadline = ctx.loop.time() + ctx.config.keepalive_timeout
        if ctx.draining:  # accepted as the stop came: served, within the grace
            self.shutdown()

    def defer(self, data: bytes) -> None:
        """Enough requests are read ahead of the threads: leave this
        connection's first one unparsed and stop reading (its further bytes
        wait in the kernel) until a thread frees (read_again); no deadline
        meanwhile: the wait is ours, not the client's."""
        assert self.transport is not None
        self.deferred = True
        self.unread = data
        self.deadline = 0.0
        self.transport.pause_reading()
        self.ctx.deferred.append(self)

    def read_again(self) -> None:
        """Out of ``ctx.deferred``: parse what was read, from the loop's next
        turn (not inside the callback of the request that made room)."""
        self.deferred = False
        self.ctx.resuming += 1
        self.deadline = self.ctx.loop.time() + self.ctx.config.keepalive_timeout
        self.ctx.loop.call_soon(self.read_unread)

    def read_unread(self) -> None:
        self.ctx.resuming -= 1
        data, self.unread = self.unread, b""
        if self.transport is not None:
            self.transport.resume_reading()
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.fresh:
            self.fresh = False
            ctx = self.ctx
            if ctx.reading_room() <= 0 and ctx.waiting() < ctx.pool.capacity:
                self.defer(data)
                return
        if self.lingering or self.pending_error is not None:
            return
        try:
            events = self.proto.receive_data(data)
        except RemoteProtocolError as exc:
            self.protocol_error(exc)
            return
        for event in events:
            kind = type(event)
            if kind is RequestReceived:
                assert isinstance(event, RequestReceived)
                request = Request(
                    event.stream_id, event.environ, event.role, self.ctx.config.spool_threshold
                )
                request.since = self.ctx.loop.time()
                if self.ctx.recording:
                    request.arrived = time.monotonic()
                self.receiving[event.stream_id] = request
            elif kind is BodyReceived:
                assert isinstance(event, BodyReceived)
                self.receiving[event.stream_id].body.write(event.data)
            elif kind is RequestComplete:
                request = self.receiving.pop(event.stream_id)
                if event.stream_id in self.running:
                    self.waiting.append(request)  # pipelined behind its predecessor
                else:
                    self.dispatch(request)
            elif kind is FilterDataReceived:
                assert isinstance(event, FilterDataReceived)
                data_buffer = self.receiving[event.stream_id].filter_data
                assert data_buffer is not None
                data_buffer.write(event.data)
            elif kind is RequestAborted:
                self.aborted(event.stream_id)
        reply = self.proto.data_to_send()
        if reply and self.transport is not None:
            self.transport.write(reply)
        if self.waiting and self.transport is not None:
            # Bound pipelining: read on only once the queue is served.
            self.transport.pause_reading()
        self.touch()

    def eof_received(self) -> bool | None:
        if self.lingering:
            return False
        if self.deferred:  # a client that half-closed: its request is whole
            self.deferred = False
            self.ctx.deferred.remove(self)
            data, self.unread = self.unread, b""
            self.data_received(data)
        # A request partly received (not one complete and waiting for its
        # response: a client may half-close after its last request).
        partial = bool(self.receiving) or not (self.proto.idle or self.running or self.waiting)
        try:
            self.proto.receive_data(b"")
        except RemoteProtocolError as exc:
            log.info("%s: %s: %s", self.listener.name, self.peer_name(), exc)
        else:
            if partial:
                log.info(
                    "%s: %s: closed in the middle of a request",
                    self.listener.name,
                    self.peer_name(),
                )
        # Keep the write side open while responses are still owed (a client
        # may half-close after its last request).
        return bool(self.running or self.waiting)

    def connection_lost(self, exc: Exception | None) -> None:
        ctx = self.ctx
        ctx.connections.discard(self)
        if self.deferred:
            self.deferred = False
            ctx.deferred.remove(self)
        if ctx.accept_paused:
            ctx.resume_accepting()
        self.transport = None
        for request in self.receiving.values():
            request.discard()
        self.receiving.clear()
        for request in self.waiting:
            request.discard()
        self.waiting.clear()
        for stream in self.running.values():
            stream.cancel()
        # Wake the writers waiting on this connection, if any can be: one
        # waits only while paused or past the mark (both lowered only by the
        # loop thread, this one), and none starts now that the transport is gone.
        if self._paused or self._queued > self.ctx.config.write_buffer:
            with self._flow:
                self._paused = False
                self._flow.notify_all()

    def pause_writing(self) -> None:
        with self._flow:
            self._paused = True

    def resume_writing(self) -> None:
        with self._flow:
            self._paused = False
            self._flow.notify_all()

    # -- requests ------------------------------------------------------------
    def dispatch(self, request: Request) -> None:
        ctx = self.ctx
        self.requests += 1
        request.finish()
        stream = Stream(self, request)
        if ctx.recording:
            stream.queued = time.monotonic()
        self.running[request.stream_id] = stream
        # Requests left unread (--read-ahead) count as waiting: 503 past them.
        if (ctx.deferred and ctx.waiting() >= ctx.pool.capacity) or not ctx.pool.try_submit(stream):
            self.ctx.rejected += 1
            del self.running[request.stream_id]
            request.input.close()
            if self.ctx.recording:
                stream.status, stream.sent = "503", len(BUSY_BODY)
                self.completed(stream)
            log.debug("%s: busy, 503 for %s", self.listener.name, self.peer_name())
            self.write(
                self.proto.reject(
                    request.stream_id, "503 Service Unavailable", BUSY_HEADERS, BUSY_BODY
                )
            )
            self.after_response(request.stream_id)
            return
        request.held = request.body.in_memory
        if request.filter_data is not None:
            request.held += request.filter_data.in_memory
        ctx.body_bytes += request.held

    def aborted(self, stream_id: int) -> None:
        request = self.receiving.pop(stream_id, None)
        if request is not None:
            request.discard()
            self.write(self.proto.end_response(stream_id))
            return
        for queued in self.waiting:
            if queued.stream_id == stream_id:
                self.waiting.remove(queued)
                queued.discard()
                self.write(self.proto.end_response(stream_id))
                return
        stream = self.running.pop(stream_id, None)
        if stream is not None:
            # Answer the front server now; the application thread cannot be
            # interrupted, it stops at its next write and its pool slot is
            # freed then.
            stream.cancel()
            self.write(self.proto.end_response(stream_id))
            self.after_response(stream_id)

    def expire(self, stream: Stream) -> None:
        """The application has held ``stream`` past ``--timeout``: answer for
        it now (504, or a broken response if its head went out) and let its
        thread end when it will; its pool slot stays taken until then."""
        stream_id = stream.request.stream_id
        if self.running.get(stream_id) is not stream:
            return
        del self.running[stream_id]
        stream.cancel()
        if self.transport is None:
            return
        if stream.started:
            self.write(self.proto.abort_response(stream_id))
            self.reset()
            return
        self.write(
            self.proto.reject(stream_id, "504 Gateway Timeout", TIMEOUT_HEADERS, TIMEOUT_BODY)
        )
        if self.ctx.recording:
            stream.status, stream.sent = "504", len(TIMEOUT_BODY)
            self.completed(stream)
        self.after_response(stream_id)

    def refuse(self, stream: Stream) -> None:
        """Answer a request still waiting for a thread with 503 (no thread
        will come: they are all stuck); the app never sees it."""
        stream_id = stream.request.stream_id
        if self.running.get(stream_id) is not stream or self.transport is None:
            return
        del self.running[stream_id]
        stream.cancel()  # a thread that frees up after all skips it
        self.ctx.rejected += 1
        self.write(self.proto.reject(stream_id, "503 Service Unavailable", BUSY_HEADERS, BUSY_BODY))
        if self.ctx.recording:
            stream.status, stream.sent = "503", len(BUSY_BODY)
            self.completed(stream)
        self.after_response(stream_id)

    # -- responses (called on the loop by Stream) ----------------------------
    def on_start(
        self, stream: Stream, status: str, headers: list[tuple[str, str]], body: bytes, end: bool
    ) -> None:
        if body and not end:
            self.release(len(body))
        if stream.cancelled:
            if end:
                self.finish(stream)
            return
        stream.started = True
        stream.status = status
        stream.sent += len(body)
        self.write(self.proto.start_response(stream.request.stream_id, status, headers, body, end))
        if end:
            self.finish(stream)

    def on_body(self, stream: Stream, data: bytes) -> None:
        self.release(len(data))
        if not stream.cancelled:
            stream.sent += len(data)
            self.write(self.proto.send_body(stream.request.stream_id, data))

    def on_end(self, stream: Stream) -> None:
        if not stream.cancelled:
            self.write(self.proto.end_response(stream.request.stream_id))
        self.finish(stream)

    def on_abort(self, stream: Stream) -> None:
        if not stream.cancelled:
            self.write(self.proto.abort_response(stream.request.stream_id))
            if self.transport is not None:
                self.reset()
        self.finish(stream)

    def finish(self, stream: Stream) -> None:
        """The application is done with ``stream``: free its slot and move on."""
        ctx = self.ctx
        ctx.pool.done()
        ctx.body_bytes -= stream.request.held
        stream.request.held = 0
        if ctx.deferred:
            ctx.read_deferred()
        if ctx.request_limit and ctx.served() >= ctx.request_limit:
            ctx.retire(f"served {ctx.served()} requests (--max-requests)")
        stream.request.input.close()
        if ctx.recording and not stream.logged:
            self.completed(stream)
        stream_id = stream.request.stream_id
        if self.running.get(stream_id) is stream:  # not already answered (abort)
            del self.running[stream_id]
            self.after_response(stream_id)

    def completed(self, stream: Stream) -> None:
        """Record a response: the access log line and the metrics."""
        stream.logged = True
        queue_time = max(0.0, stream.began - stream.queued) if stream.began else 0.0
        self.ctx.record(
            self.listener,
            stream.request,
            stream.status,
            stream.cancelled,
            stream.sent,
            self.peer.get("dumbwaiter.connection", ""),
            queue_time,
        )

    def after_response(self, stream_id: int) -> None:
        if self.transport is None:
            return
        if self.proto.closing:
            # Nothing more may be sent on this connection (an abort, a
            # close-delimited body, Connection: close): drop what waits.
            for queued in self.waiting:
                queued.discard()
            self.waiting.clear()
        for queued in self.waiting:
            if queued.stream_id == stream_id:
                self.waiting.remove(queued)
                self.dispatch(queued)
                break
        if not self.waiting and self.pending_error is None:
            self.transport.resume_reading()
        if self.running or self.waiting:
            return
        if self.pending_error is not None:
            self.write(self.proto.error_response(self.pending_error))
            self.linger()
        elif self.proto.closing or self.ctx.draining:
            self.transport.close()
        else:
            self.touch()

    async def send_file(self, stream: Stream, file: IO[bytes], offset: int, count: int) -> bool:
        # Asked here, on the loop, after on_start: the protocol's framing of
        # this response is known only once its head has been built.
        if self.transport is None or stream.cancelled or not self.raw_body_ok(stream):
            return False
        try:
            await self.ctx.loop.sendfile(self.transport, file, offset, count)
            stream.sent += count
        except NotImplementedError:  # uvloop: the gateway iterates the file instead
            return False
        except (ConnectionError, OSError):
            stream.cancel()
            return False
        return True

    def raw_body_ok(self, stream: Stream) -> bool:
        check: Callable[[int], bool] | None = getattr(self.proto, "raw_body_ok", None)
        return check is not None and check(stream.request.stream_id)

    # -- flow control (application threads) -----------------------------------
    def wait_writable(self, size: int) -> None:
        """Block the calling application thread while the client is slow."""
        limit = self.ctx.config.write_buffer
        with self._flow:
            while (self._paused or self._queued > limit) and self.transport is not None:
                self._flow.wait()
            self._queued += size

    def release(self, size: int) -> None:
        with self._flow:
            self._queued -= size
            if self._queued <= self.ctx.config.write_buffer:
                self._flow.notify_all()

    def wake_writers(self) -> None:
        with self._flow:
            self._flow.notify_all()

    # -- helpers -----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if data and self.transport is not None:
            self.written += len(data)
            self.transport.write(data)

    def touch(self) -> None:
        """Re-arm the timeout that applies in the connection's current state.

        Idle between requests: ``keepalive_timeout``.  A head arriving: no
        more than ``read_timeout`` of silence, and all of it within
        ``header_timeout`` of its first byte (slowloris gains nothing by
        trickling).  A body arriving: silence as for the head, and the whole
        body within ``read_timeout + size / min_body_rate`` of the head.
        While the app has the request, the client's time does not count.
        """
        config = self.ctx.config
        now = self.ctx.loop.time()
        if self.running or self.waiting:
            self.deadline = 0.0
            self.head_since = 0.0
        elif self.proto.idle:
            self.deadline = now + config.keepalive_timeout
            self.waiting_for = ""
            self.head_since = 0.0
        elif self.receiving:
            self.head_since = 0.0
            self.deadline = now + config.read_timeout
            self.waiting_for = "more of the body"
            if config.min_body_rate:
                for request in self.receiving.values():
                    due = request.since + config.read_timeout
                    due += request.body.size / config.min_body_rate
                    if due < self.deadline:
                        self.deadline = due
                        self.waiting_for = f"the body at {config.min_body_rate} bytes/s"
        else:
            if not self.head_since:
                self.head_since = now
            self.deadline = now + config.read_timeout
            self.waiting_for = "more of the head"
            if self.head_since + config.header_timeout < self.deadline:
                self.deadline = self.head_since + config.header_timeout
                self.waiting_for = f"the whole head within {config.header_timeout:g}s"

    def timed_out(self) -> None:
        if self.transport is None:
            return
        if not self.proto.idle and not self.lingering:
            log.info(
                "%s: %s: closing: still waiting for %s",
                self.listener.name,
                self.peer_name(),
                self.waiting_for,
            )
        self.transport.close()

    def check_writes(self, now: float) -> None:
        """Drop the connection if its peer has taken nothing of what we wrote
        for ``write_timeout`` (a client that stopped reading holds memory,
        and perhaps a thread waiting to write)."""
        transport = self.transport
        if transport is None:
            return
        flushed = self.written - transport.get_write_buffer_size()
        if flushed != self.flushed or flushed == self.written:
            self.flushed = flushed
            self.flushed_at = now
        elif now - self.flushed_at > self.ctx.config.write_timeout:
            log.info(
                "%s: %s: the peer read nothing for %gs, dropping the connection",
                self.listener.name,
                self.peer_name(),
                self.ctx.config.write_timeout,
            )
            self.reset()

    def protocol_error(self, exc: RemoteProtocolError) -> None:
        log.info("%s: %s: %s", self.listener.name, self.peer_name(), exc)
        for request in self.receiving.values():
            request.discard()
        self.receiving.clear()
        if self.transport is None:
            return
        if self.running or self.waiting:
            # Answer in order: the error goes out after the responses owed.
            self.pending_error = exc
            self.transport.pause_reading()
            return
        self.write(self.proto.error_response(exc))
        self.linger()

    def linger(self) -> None:
        """Close after our answer, reading and dropping what the peer still
        sends for a moment, so it sees the answer rather than a reset."""
        assert self.transport is not None
        self.lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.deadline = self.ctx.loop.time() + LINGER_SECONDS
        else:
            self.transport.close()

    def reset(self) -> None:
        """End the connection abnormally.  On TCP that is a reset (RST, by a
        zero linger time), which tells even a close-delimited response (SCGI,
        uwsgi, HTTP/1.0) from a complete one; unix sockets have no reset, so
        there only a declared Content-Length lets the front see the loss."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            reset_on_close(sock)
        self.transport.abort()

    def peer_name(self) -> str:
        return peer_name(self.peer)

    def shutdown(self) -> None:
        """Graceful stop.  A request in flight, queued or partly received is
        finished first (``after_response`` closes once it is answered).  A
        connection that has not sent its first request may have it on the
        way (it was accepted before we stopped): it gets ``DRAIN_GRACE``
        seconds.  An idle kept-alive connection closes now."""
        if self.transport is None:
            return
        self.proto.drain()
        if self.running or self.waiting or self.receiving or not self.proto.idle:
            return
        if not self.requests:
            self.deadline = min(self.deadline, self.ctx.loop.time() + DRAIN_GRACE)
            return
        self.transport.close()
