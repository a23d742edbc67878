"""One connection's decisions, whichever driver moves its bytes.

Theory of operation
-------------------
A :class:`Session` sits between a connection's sans-IO protocol object and
the *driver* that moves its bytes: the event loop (:mod:`.connection`) or an
application thread on a blocking socket (:mod:`.direct`).  It does no I/O
and has no clock of its own (it reads its settings' one, which a test may
replace): the driver hands it the bytes it read, and does what the session
asks through the :class:`~.exchange.Wire` (write, pause reading, close,
linger, reset, run this request).  So everything that decides is here, once:

* protocol events become :class:`~dumbwaiter.request.Request`\\ s
  (:meth:`Session.receive`), handed to the driver to run, or queued behind
  the response owed before them on the same stream (HTTP pipelining);
* what the application's calls turn into on the wire (``send_head`` ...),
  and the server's own answers: 503 when no thread will take a request, 504
  past ``--timeout``, the protocol's error answer and a lingering close;
* which deadline applies now (:meth:`Session.arm`), the log line when it
  passes; what follows each response (:meth:`Session.after_response`);
* what is reported (the access log and metrics, :mod:`.reporting`).

Ownership: one thread at a time uses a session, its driver's (a kept
connection may pass from an application thread to the loop); the exceptions,
for ``--timeout``, take the driver's lock (:meth:`Session.timeout_answer`).
"""

from __future__ import annotations

import logging
from typing import Final

from ..protocols import (
    BodyReceived,
    FilterDataReceived,
    PeerError,
    RemoteProtocolError,
    RequestAborted,
    RequestComplete,
    RequestReceived,
    ServerProtocol,
)
from ..request import EMPTY_INPUT, Request
from .deadlines import DRAIN_GRACE, LINGER_SECONDS, Deadline, SessionSettings
from .exchange import GONE, ExchangeBase, Reports, Wire, peer_name

__all__ = ["BUSY_BODY", "TIMEOUT_BODY", "Session"]

log = logging.getLogger("dumbwaiter")

BUSY_STATUS: Final = "503 Service Unavailable"
BUSY_HEADERS: Final = [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "1")]
BUSY_BODY: Final = b"503 Service Unavailable: the server is busy, retry shortly\n"
TIMEOUT_STATUS: Final = "504 Gateway Timeout"
TIMEOUT_HEADERS: Final = [("Content-Type", "text/plain; charset=utf-8")]
TIMEOUT_BODY: Final = b"504 Gateway Timeout: the application did not answer in time\n"


class Session(Deadline):
    """The decisions of one connection (see the module doc)."""

    # Class attributes: an instance stores only what changes (one session
    # is made per connection: per request, behind lighttpd; ``lingering``
    # and ``closed`` are the base's).
    #: Requests handed to the application so far.
    dispatched = 0
    #: The server is stopping: close once what is owed is answered.
    draining = False
    #: A peer error waiting for the responses owed before it to go out.
    pending_error: RemoteProtocolError | None = None

    def __init__(
        self,
        proto: ServerProtocol,
        wire: Wire,
        listener: str,
        gateway: str,
        peer: dict[str, str],
        settings: SessionSettings,
        reporter: Reports | None,
    ) -> None:
        self.proto = proto
        self.wire = wire
        #: The listener's name and its protocol (log lines, reports).
        self.listener = listener
        self.gateway = gateway
        #: CGI variables only the socket knows (see Listener.peer_environ).
        self.peer = peer
        self.settings = settings
        self.reporter = reporter
        self.receiving: dict[int, Request] = {}
        self.running: dict[int, ExchangeBase] = {}
        #: Complete requests behind a response owed on the same stream.
        self.waiting: list[Request] = []

    # -- receiving ---------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Bytes the driver read (not ``b""``: see :meth:`eof`).  Complete
        requests go to ``Wire.dispatch``; the protocol's replies are written."""
        if self.lingering or self.pending_error is not None:
            return
        try:
            events = self.proto.receive_data(data)
        except RemoteProtocolError as exc:
            self.protocol_error(exc)
            return
        now = self.settings.clock()
        error = None
        for event in events:
            kind = type(event)
            if kind is RequestReceived:
                assert isinstance(event, RequestReceived)
                request = Request(
                    event.stream_id, event.environ, event.role, self.settings.spool_threshold
                )
                request.arrived = now
                self.receiving[event.stream_id] = request
            elif kind is BodyReceived:
                assert isinstance(event, BodyReceived)
                self.receiving[event.stream_id].add_body(event.data)
            elif kind is RequestComplete:
                request = self.receiving.pop(event.stream_id)
                request.finish()
                if event.stream_id in self.running:
                    self.waiting.append(request)  # pipelined behind its predecessor
                else:
                    self.begin(request)
            elif kind is FilterDataReceived:
                assert isinstance(event, FilterDataReceived)
                filter_data = self.receiving[event.stream_id].filter_data
                assert filter_data is not None
                filter_data.write(event.data)
            elif kind is RequestAborted:
                self.aborted(event.stream_id)
            elif kind is PeerError:  # after the requests just completed
                assert isinstance(event, PeerError)
                error = event.error
        reply = self.proto.data_to_send()
        if reply and not self.closed:
            self.wire.write(reply)
        if error is not None:
            self.protocol_error(error)
        if self.waiting and not self.closed:
            # Bound pipelining: read on only once the queue is served.
            self.wire.pause_reading()
        if self.running:  # (the common case: no deadline while the app has it)
            self.deadline = self.head_since = 0.0
        else:
            self.arm(now)

    def eof(self) -> bool:
        """The peer closed its side.  Returns whether to keep ours open:
        while responses are owed (a client may half-close after its last
        request).  One log line if a request was partly received."""
        partial = bool(self.receiving) or not (self.proto.idle or self.running or self.waiting)
        for exchange in self.running.values():
            exchange.peer_closed()
        try:
            self.proto.receive_data(b"")
        except RemoteProtocolError as exc:
            log.info("%s: %s: %s", self.listener, peer_name(self.peer), exc)
        else:
            if partial:
                log.info(
                    "%s: %s: closed in the middle of a request", self.listener, peer_name(self.peer)
                )
        return bool(self.running or self.waiting)

    def lost(self) -> None:
        """The connection is gone: nothing owed can be sent any more."""
        self.closed = True
        self.wire = GONE  # (and the driver may be freed)
        for request in self.receiving.values():
            request.discard()
        self.receiving.clear()
        for request in self.waiting:
            request.discard()
        self.waiting.clear()
        if self.running:  # (a copy: a WebSocket's cancel finishes its exchange)
            for exchange in list(self.running.values()):
                exchange.cancel()

    def begin(self, request: Request) -> None:
        """Hand a complete request to the driver, or answer 503 for it."""
        self.dispatched += 1
        exchange = self.wire.dispatch(request)
        if exchange is None:
            self.answer_busy(ExchangeBase(request, self.peer, self.listener))
            log.debug("%s: busy, 503 for %s", self.listener, peer_name(self.peer))
            return
        self.running[request.stream_id] = exchange

    def aborted(self, stream_id: int) -> None:
        """The front gave up on ``stream_id`` (``FCGI_ABORT_REQUEST``): the
        protocol's end is owed at once, whatever the app is doing."""
        request = self.receiving.pop(stream_id, None)
        if request is None:
            for queued in self.waiting:
                if queued.stream_id == stream_id:
                    self.waiting.remove(queued)
                    request = queued
                    break
        if request is not None:
            request.discard()
            self.send(self.proto.end_response(stream_id))
            return
        exchange = self.running.pop(stream_id, None)
        if exchange is not None:
            # The application thread cannot be interrupted: it stops at its
            # next write, and its thread is freed then.
            exchange.cancel()
            self.send(self.proto.end_response(stream_id))
            self.after_response(stream_id)

    # -- responding (the thread that owns the session) --------------------------
    def send_head(
        self,
        exchange: ExchangeBase,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
        end: bool,
    ) -> None:
        if exchange.cancelled:
            if end:
                self.finish(exchange)
            return
        exchange.started = True
        exchange.status = status
        exchange.sent += len(body)
        data = self.proto.start_response(exchange.request.stream_id, status, headers, body, end)
        if not self.closed:  # (a head is never empty)
            self.wire.write(data)
        if end:
            self.finish(exchange)

    def send_body(self, exchange: ExchangeBase, data: bytes) -> None:
        if not exchange.cancelled:
            exchange.sent += len(data)
            self.send(self.proto.send_body(exchange.request.stream_id, data))

    def send_end(self, exchange: ExchangeBase) -> None:
        if not exchange.cancelled:
            self.send(self.proto.end_response(exchange.request.stream_id))
        self.finish(exchange)

    def send_abort(self, exchange: ExchangeBase) -> None:
        if not exchange.cancelled:
            self.send(self.proto.abort_response(exchange.request.stream_id))
            if not self.closed:
                self.wire.reset()
        self.finish(exchange)

    def raw_body_ok(self, exchange: ExchangeBase) -> bool:
        """Whether the response's body may now go out as raw bytes (sendfile)."""
        return not (exchange.cancelled or self.closed) and self.proto.raw_body_ok(
            exchange.request.stream_id
        )

    def take_over(self, exchange: ExchangeBase) -> bytes | None:
        """The connection leaves its protocol for a WebSocket after
        ``exchange``'s handshake: the bytes already received after it (None:
        this protocol cannot be left).  ``exchange`` stays running until
        :meth:`finish`, which then closes the connection."""
        if exchange.cancelled or self.closed:
            return None
        return self.proto.take_over(exchange.request.stream_id)

    def finish(self, exchange: ExchangeBase) -> None:
        """The application is done with ``exchange``: report it and move on."""
        request = exchange.request
        if request.input is not EMPTY_INPUT:  # (shared by every request without a body)
            request.input.close()
        if self.reporter is not None:
            self.report(exchange)
        stream_id = request.stream_id
        if self.running.get(stream_id) is exchange:  # not already answered (abort)
            del self.running[stream_id]
            self.after_response(stream_id)

    def after_response(self, stream_id: int) -> None:
        """A response is complete: run what waited for it, read on, or close."""
        if self.closed:
            return
        closing = self.proto.closing
        if closing and self.waiting:
            # Nothing more may be sent on this connection (an abort, a
            # close-delimited body, Connection: close): drop what waits.
            for queued in self.waiting:
                queued.discard()
            self.waiting.clear()
        elif self.waiting:
            for queued in self.waiting:
                if queued.stream_id == stream_id:
                    self.waiting.remove(queued)
                    self.begin(queued)
                    break
            closing = self.proto.closing
        if self.running or self.waiting:
            if not self.waiting and self.pending_error is None:
                self.wire.resume_reading()  # (paused while requests waited)
        elif self.pending_error is not None:
            self.send(self.proto.error_response(self.pending_error))
            self.linger()
        elif closing or self.draining:
            self.wire.close()
        else:
            self.wire.resume_reading()
            self.arm(self.settings.clock())

    # -- the server's own answers ------------------------------------------------
    def answer_busy(self, exchange: ExchangeBase) -> None:
        """503 (``FCGI_OVERLOADED``) for a request no thread will take; the
        application never sees it."""
        request = exchange.request
        self.running.pop(request.stream_id, None)
        exchange.cancel()  # a thread that frees up after all skips it
        request.input.close()
        self.send(self.proto.reject(request.stream_id, BUSY_STATUS, BUSY_HEADERS, BUSY_BODY))
        exchange.status, exchange.sent = BUSY_STATUS, len(BUSY_BODY)
        self.report(exchange)
        self.after_response(request.stream_id)

    def timeout_answer(self, exchange: ExchangeBase) -> bytes:
        """``--timeout`` passed: the bytes that answer for the application (a
        504, or nothing if its head went out: then the connection must be
        reset), reported now (the app may never return).  May be called by
        another thread than the owner's, holding the lock that orders it
        against the response's start."""
        exchange.expired = True
        answer = b""
        if not exchange.started:
            stream_id = exchange.request.stream_id
            answer = self.proto.reject(stream_id, TIMEOUT_STATUS, TIMEOUT_HEADERS, TIMEOUT_BODY)
            exchange.status, exchange.sent = TIMEOUT_STATUS, len(TIMEOUT_BODY)
        self.report(exchange)
        return answer

    def expire(self, exchange: ExchangeBase) -> None:
        """The application has held ``exchange`` past ``--timeout``: answer
        for it now (504, or a broken response if its head went out) and let
        its thread end when it will (the owner's thread)."""
        stream_id = exchange.request.stream_id
        if self.running.get(stream_id) is not exchange:
            return
        del self.running[stream_id]
        if self.closed:
            exchange.cancel()
            return
        answer = self.timeout_answer(exchange)
        exchange.cancel()
        if answer:
            self.send(answer)
            self.after_response(stream_id)
        else:  # its head went out: a broken response
            self.send(self.proto.abort_response(stream_id))
            self.wire.reset()

    def protocol_error(self, exc: RemoteProtocolError) -> None:
        """The peer broke the protocol: log one line, answer once the
        responses owed before it are out, then linger."""
        log.info("%s: %s: %s", self.listener, peer_name(self.peer), exc)
        for request in self.receiving.values():
            request.discard()
        self.receiving.clear()
        if self.closed:
            return
        if self.running or self.waiting:
            self.pending_error = exc
            self.wire.pause_reading()
            return
        self.send(self.proto.error_response(exc))
        self.linger()

    # -- deadlines -----------------------------------------------------------------
    def arm(self, now: float) -> None:
        """Set the deadline of the connection's current state (see
        :meth:`Deadline.next_deadline`); lingering keeps its own."""
        if self.running:  # (the common case, without the call)
            self.deadline = self.head_since = 0.0
        elif not self.lingering:
            busy = bool(self.waiting)
            idle = self.proto.idle
            receiving = self.receiving.values()
            self.next_deadline(now, self.settings, busy, idle, receiving)

    def drain(self) -> bool:
        """Graceful stop: whether the connection may close now (an idle
        kept-alive one).  Else what is in flight or partly received is
        finished first (then ``after_response`` closes), and a connection
        yet to send its first request gets :data:`DRAIN_GRACE`."""
        self.draining = True
        self.proto.drain()
        if self.running or self.waiting or self.receiving or not self.proto.idle:
            return False
        if not self.dispatched:
            self.deadline = min(self.deadline, self.settings.clock() + DRAIN_GRACE)
            return False
        return True

    def renew(
        self, proto: ServerProtocol, wire: Wire, listener: str, gateway: str, peer: dict[str, str]
    ) -> None:
        """Serve a new connection, as a new session would (a thread keeps
        its session from one connection to the next)."""
        self.proto, self.wire, self.peer = proto, wire, peer
        self.listener, self.gateway = listener, gateway
        self.dispatched = 0
        self.lingering = self.closed = self.draining = False
        self.pending_error = None
        self.deadline = self.head_since = 0.0
        if self.receiving or self.running or self.waiting:  # (after an error)
            self.receiving, self.running, self.waiting = {}, {}, []

    def take_back(self, exchange: ExchangeBase) -> Request:
        """The request of ``exchange``, not started, for the next driver."""
        del self.running[exchange.request.stream_id]
        self.dispatched -= 1
        return exchange.request

    def adopted(self, wire: Wire, settings: SessionSettings, requests: list[Request]) -> None:
        """Another driver serves the connection from now on (one an
        application thread hands to the loop: kept, or slow to send its
        request), and runs ``requests`` (see :meth:`take_back`)."""
        self.wire = wire
        self.settings = settings
        for request in requests:
            self.begin(request)
        self.arm(settings.clock())

    # -- helpers -----------------------------------------------------------------
    def report(self, exchange: ExchangeBase) -> None:
        """Report ``exchange`` once (the access log, the metrics)."""
        if not exchange.reported:
            exchange.reported = True
            if self.reporter is not None:
                self.reporter.report(exchange, self.gateway)

    def linger(self) -> None:
        self.lingering = True
        self.deadline = self.settings.clock() + LINGER_SECONDS
        self.wire.linger()

    def send(self, data: bytes) -> None:
        if data and not self.closed:
            self.wire.write(data)
