"""HTTP/1.1 server side (RFC 9110, RFC 9112), sans-IO, over llhttp.

Theory of operation
-------------------
llhttp (through ``httptools.HttpRequestParser``) does the byte-level work:
request line, field syntax, Content-Length and chunked framing (RFC 9112
sections 3, 5, 6, 7).  Its callbacks land in the ``on_*`` methods below,
which enforce what llhttp leaves to us -- the limits, the HTTP versions we
speak -- and, when the head is complete, have :mod:`.http_environ` derive the
CGI environ once and check Host (section 3.2) and the transfer codings we
implement (6.1).

Every request is stream 1 (they are sequential); each whose head is complete
is :class:`.heads.Owed` a response, in a FIFO, answered in order (9.3.2).

Receiving states: *reading* (parse what comes) until a request without
keep-alive completes (9.6), the peer half-closes, ``max_pipelined`` requests
are waiting (the rest of the pipeline is left unread and the connection
closes after the owed responses; the client retries, 9.3.2), or the peer
errs.  An error in bytes that also completed requests is *held*: those
requests are returned, then a ``PeerError`` with it, which the server
answers after their responses (none of which says ``Connection: close``).

Responding states: idle -> (start_response) sending -> (end_response) idle,
with one framing chosen at the start (by :func:`.heads.framed_head`): raw (a
Content-Length, or the close-delimited body of an HTTP/1.0 response of
unknown length), chunked, or no body (HEAD, 1xx, 204, 304).
``abort_response``, ``error_response`` and ``take_over`` (a WebSocket
handshake: no HTTP is read after a GET that asks to upgrade to one) end
HTTP on the connection: afterwards every response call writes nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import NoReturn

import httptools

from . import Limits
from .errors import LocalProtocolError, RemoteProtocolError
from .events import BodyReceived, Event, PeerError, RequestComplete, RequestReceived
from .heads import CHUNKED, NO_BODY, RAW, UNTIL_CLOSE, Owed, error_answer, framed_head, http_date
from .http_environ import has_body, request_environ, wants_websocket
from .http_method import FirstMethod

__all__ = ["CONTINUE", "HTTPServerProtocol"]

STREAM_ID = 1
#: The interim response to ``Expect: 100-continue`` (RFC 9110 section 10.1.1).
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

#: A request line's bytes but its target's, in the raw bound on a head being read.
HEAD_SLACK = 1024
UNLIMITED = 1 << 62

# ``_mode``: no response is being sent, else the framing framed_head chose.
_IDLE = 0
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_LAST_CHUNK = b"0\r\n\r\n"


class _Stop(Exception):
    """Raised from a callback to make llhttp stop reading (not an error)."""


class HTTPServerProtocol:
    """The server side of one HTTP/1.x connection (see the module doc).

    ``date`` returns the value of the Date header (an IMF-fixdate, bytes);
    ``server`` is the Server header's value (``b""``: none); at most
    ``max_pipelined`` requests are read ahead of their responses.  Fields of
    a chunked body's trailer are counted against the limits, then dropped.
    Upgrade and CONNECT requests are answered as plain requests (RFC 9110
    7.8), but for a WebSocket handshake's (see ``take_over``); one with a
    body is refused (400).
    The ``on_*`` methods are llhttp's callbacks, not API.
    """

    def __init__(
        self,
        limits: Limits = Limits(),  # noqa: B008 (frozen, so sharing it is safe)
        *,
        date: Callable[[], bytes] | None = None,
        server: bytes = b"dumbwaiter",
        max_pipelined: int = 16,
    ) -> None:
        self._max_target = limits.max_request_line
        self._max_count = limits.max_header_count
        self._max_field_bytes = limits.max_header_bytes
        self._max_head_raw = limits.max_request_line + limits.max_header_bytes + HEAD_SLACK
        self._max_body = limits.max_body or UNLIMITED
        self._max_pipelined = max_pipelined
        self._date = date or http_date
        self._server_line = b"Server: " + server + b"\r\n" if server else b""
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._send = b""
        # The request being received.
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._body_size = 0
        self._current: Owed | None = None
        self._in_message = self._in_fields = False
        self._block = self._partial = 0  # raw bound on a field block (see receive_data)
        self._failure: RemoteProtocolError | None = None
        self._tail: bytes | None = None  # after a WebSocket handshake (take_over)
        self._first: FirstMethod | None = FirstMethod()  # (until a request is read)
        # The connection.
        self._queue: deque[Owed] = deque()
        self._reading = True
        self._error_follows = False  # the server answers one after the responses owed
        self._broken = False
        # The response being sent.
        self._mode = _IDLE
        self._close_after = False
        self._draining = False

    # -- receiving -------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        """Feed received bytes (``b""``: the peer half-closed); see ServerProtocol.

        After a half-close, a request partly received is dropped silently.
        """
        if not self._reading:
            tail = self._tail
            if tail is not None and data:  # after a WebSocket handshake: take_over's
                # (past the bound, a client that did not wait for the 101: no take-over)
                self._tail = None if len(tail) + len(data) > self._max_head_raw else tail + data
            return []
        events: list[Event] = []
        self._events = events
        if not data:
            self._reading = False
            self._drop_partial()
            return events
        first = self._first
        if first is not None:
            first.saw(data)
            if first.refused:
                error = first.verdict()
                return events if error is None else self._failed(events, error)
        block = self._block
        try:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserUpgrade as exc:
                current = self._current
                if current is not None and current.websocket:  # the rest is not HTTP
                    self._tail = bytes(data[exc.args[0] :])
                    self._reading = False
                else:
                    self._after_upgrade(data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            if not self._reading:  # a _Stop: the events so far stand
                return events
            error = self._failure or RemoteProtocolError(f"bad request: {exc}")
            if isinstance(exc, httptools.HttpParserInvalidMethodError) and first is not None:
                first.refused = str(error)  # 501 or 400: see http_method.py
                verdict = first.verdict()
                return events if verdict is None else self._failed(events, verdict)
            return self._failed(events, error)
        if self._in_fields:
            # httptools buffers a field until its end; bound what it holds.  Bytes
            # fed while one head or trailer stayed incomplete all belong to it.
            self._partial = self._partial + len(data) if block == self._block else 0
            if self._partial > self._max_head_raw:
                return self._failed(events, RemoteProtocolError("header section too large", 431))
        return events

    def data_to_send(self) -> bytes:
        data, self._send = self._send, b""
        return data

    def _after_upgrade(self, data: bytes) -> None:
        # An Upgrade or CONNECT answered as a plain request: HTTP follows it.
        while data:
            try:
                self._parser.feed_data(data)
                return
            except httptools.HttpParserUpgrade as exc:
                data = data[exc.args[0] :]

    def _failed(self, events: list[Event], error: RemoteProtocolError) -> list[Event]:
        """Stop reading; raise ``error`` unless requests completed in this batch,
        which are returned, then it as a ``PeerError`` (see the module doc)."""
        self._reading = False
        self._drop_partial()
        done = len(events)
        while done and type(events[done - 1]) is not RequestComplete:
            done -= 1
        if not done:
            raise error
        del events[done:]
        events.append(PeerError(STREAM_ID, error))
        self._error_follows = True
        return events

    def _drop_partial(self) -> None:
        """Forget a request that will never complete (unless it is being answered)."""
        queue = self._queue
        answering = len(queue) == 1 and self._mode != _IDLE
        if self._in_message and queue and not queue[-1].complete and not answering:
            queue.pop()
        self._in_message = self._in_fields = False

    def _fail(self, status: int, message: str) -> NoReturn:
        self._failure = RemoteProtocolError(message, status)
        raise self._failure

    # -- llhttp callbacks (not API) --------------------------------------------
    def on_message_begin(self) -> None:
        if len(self._queue) >= self._max_pipelined:
            self._reading = False
            raise _Stop
        self._in_message = self._in_fields = True
        self._block += 1
        self._url = b""
        self._fields = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        if self._url:
            url = self._url + url
        if len(url) > self._max_target:
            self._fail(414, "request target too long")
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Only collected here (the hot path); on_headers_complete reads them.
        # A trailer section is a list of its own, counted, then dropped.
        fields = self._fields
        fields.append((name, value))
        if len(fields) > self._max_count:
            self._fail(431, "too many header fields")

    def on_headers_complete(self) -> None:
        self._in_fields = False
        parser = self._parser
        version = parser.get_http_version()
        protocol = _PROTOCOLS.get(version)
        if protocol is None:  # llhttp takes a line without a version for HTTP/0.9
            self._fail(400 if version == "0.9" else 505, f"HTTP/{version} request")
        http10 = protocol == "HTTP/1.0"
        method = parser.get_method().decode("ascii")
        fields, self._fields = self._fields, []
        try:
            environ = request_environ(fields, self._url, method, protocol, self._max_field_bytes)
            body = has_body(environ, http10, self._max_body)
        except RemoteProtocolError as error:
            self._failure = error  # as in _fail: llhttp only says "User callback error"
            raise
        if body and parser.should_upgrade():
            self._fail(400, "Upgrade or CONNECT with a body")  # llhttp would skip the body
        exchange = self._current = Owed(method == "HEAD", http10, parser.should_keep_alive())
        if parser.should_upgrade() and wants_websocket(environ):  # (a GET, in HTTP/1.1)
            exchange.websocket = True
            self._tail = b""  # (what follows it, if llhttp says: see receive_data)
        queue = self._queue
        queue.append(exchange)
        if body and not http10 and environ.get("HTTP_EXPECT", "").lower() == "100-continue":
            if len(queue) == 1:
                self._send += CONTINUE
            else:  # not into the middle of an earlier response: after it
                exchange.continue_owed = True
        self._events.append(RequestReceived(STREAM_ID, environ))

    def on_body(self, body: bytes) -> None:
        self._in_fields = False
        size = self._body_size + len(body)
        if size > self._max_body:
            self._fail(413, "request body too large")
        self._body_size = size
        self._events.append(BodyReceived(STREAM_ID, body))

    def on_chunk_header(self) -> None:
        # A chunk-size line, or the last chunk's trailer section: a field block.
        self._in_fields = True
        self._block += 1

    def on_chunk_complete(self) -> None:
        self._in_fields = False

    def on_message_complete(self) -> None:
        self._in_message = False
        self._first = None
        exchange = self._current
        assert exchange is not None
        exchange.complete = True
        self._events.append(RequestComplete(STREAM_ID))
        if not exchange.keep_alive:
            self._reading = False  # nothing after it is read (RFC 9112 section 9.6)
            raise _Stop

    # -- responding ------------------------------------------------------------
    def start_response(
        self,
        stream_id: int,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        end: bool = False,
    ) -> bytes:
        """The head (and ``body``, and the end when ``end``), as one bytes object.

        Framing: the application's Content-Length; else, when ``end``, the
        length of ``body``; else chunked (HTTP/1.1) or close-delimited
        (HTTP/1.0).  Raises :class:`LocalProtocolError` when no request
        awaits a response or one is already started.
        """
        exchange = self._front(stream_id)
        if exchange is None:
            return b""
        if self._mode != _IDLE:
            raise LocalProtocolError("start_response() twice for one request")
        close = (
            not exchange.keep_alive
            or not exchange.complete  # the rest of its body is not worth reading
            or (not self._reading and not self._error_follows and len(self._queue) == 1)
            or (self._draining and len(self._queue) == 1 and not self._in_message)
        )
        parts: list[bytes] = []
        mode = framed_head(
            parts,
            status,
            headers,
            exchange.head,
            exchange.http10,
            len(body) if end else -1,
            close,
            self._date,
            self._server_line,
        )
        if mode == UNTIL_CLOSE:  # close-delimited: raw, and the connection closes
            mode = RAW
            close = True
        self._mode = mode
        self._close_after = close
        if body and mode != NO_BODY:
            parts.append(b"%x\r\n%b\r\n" % (len(body), body) if mode == CHUNKED else body)
        if end:
            if mode == CHUNKED:
                parts.append(_LAST_CHUNK)
            parts.append(self._finish())
        return b"".join(parts)

    def send_body(self, stream_id: int, data: bytes) -> bytes:
        mode = self._mode
        if mode == RAW:
            return data
        if mode == CHUNKED:
            return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
        if mode == NO_BODY or self._front(stream_id) is None:
            return b""
        raise LocalProtocolError("send_body() before start_response()")

    def end_response(self, stream_id: int) -> bytes:
        mode = self._mode
        if mode == _IDLE:
            if self._front(stream_id) is None:
                return b""
            raise LocalProtocolError("end_response() before start_response()")
        after = self._finish()
        return _LAST_CHUNK + after if mode == CHUNKED else after

    def reject(
        self, stream_id: int, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        """A whole response for a request the application never saw."""
        return self.start_response(stream_id, status, headers, body, end=True)

    def abort_response(self, stream_id: int) -> bytes:
        """Nothing more is written: the client sees the body cut short."""
        if stream_id != STREAM_ID:
            raise LocalProtocolError(f"HTTP has only stream {STREAM_ID}")
        self._break()
        return b""

    def error_response(self, error: RemoteProtocolError) -> bytes:
        """A small complete response for ``error``, ending the connection
        (nothing when a response was already started)."""
        started = self._mode != _IDLE
        self._break()
        if started:
            return b""
        return error_answer(error.status, self._date, self._server_line)

    def raw_body_ok(self, stream_id: int) -> bool:
        """While a body goes out raw (Content-Length or close-delimited)."""
        return self._mode == RAW

    def take_over(self, stream_id: int) -> bytes | None:
        """A WebSocket handshake's: the bytes after it, and HTTP ends here."""
        exchange = self._front(stream_id)
        if exchange is None or not exchange.websocket or self._mode != _IDLE or self._tail is None:
            return None
        self._break()
        tail, self._tail = self._tail, None
        return tail or b""

    def keeps_connection(self, stream_id: int) -> bool:
        """While requests are read after the last one (keep-alive)."""
        return self._reading and not self._broken

    def drain(self) -> None:
        """The last response owed says ``Connection: close``; nothing after."""
        self._draining = True

    @property
    def closing(self) -> bool:
        return self._broken or (not self._reading and not self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue and not self._in_message

    def _front(self, stream_id: int) -> Owed | None:
        """The exchange to answer; None when nothing may be written any more."""
        if stream_id != STREAM_ID:
            raise LocalProtocolError(f"HTTP has only stream {STREAM_ID}")
        if self._broken:
            return None
        if not self._queue:
            if self.closing:
                return None
            raise LocalProtocolError("no request awaits a response")
        return self._queue[0]

    def _finish(self) -> bytes:
        """The front response is complete; returns what is owed right after it."""
        self._queue.popleft()
        self._mode = _IDLE
        if self._close_after:
            self._reading = False
            self._queue.clear()  # pipelined requests behind it are never answered
            return b""
        queue = self._queue
        if queue:
            following = queue[0]
            if following.continue_owed and not following.complete:
                following.continue_owed = False
                return CONTINUE
        return b""

    def _break(self) -> None:
        self._broken = True
        self._reading = False
        self._mode = _IDLE
        self._queue.clear()
