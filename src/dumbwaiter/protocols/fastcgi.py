"""FastCGI 1.0, server side, sans-IO.

Theory of operation (FastCGI Specification 1.0, sections 3 to 6)
----------------------------------------------------------------
A connection carries *records* (3.3, wire format in :mod:`.fastcgi_records`).
Records with request id 0 are management records: ``FCGI_GET_VALUES`` is
answered with ``FCGI_GET_VALUES_RESULT`` (4.1), any other type with
``FCGI_UNKNOWN_TYPE`` (4.2); the answers wait in :meth:`data_to_send`.  Every
other record belongs to the request its id names, and a record for an id that
is not active is ignored (3.3).

A request's records (5.1-5.5) drive a state machine per role (6.2-6.4),
kept as data in :mod:`.fastcgi_states`: ``_record`` looks each one up in
``STEPS`` (anything missing is a protocol error) and carries out its codes
with an if-chain.  A stream's record boundaries mean nothing (3.3), so a
name-value pair may straddle records: PARAMS are collected whole (bounded by
``Limits.max_header_bytes``) and decoded once, straight into the CGI environ
(latin-1, PEP 3333; the last duplicate wins).  STDIN and DATA pass through as
events, record by record.  The answer (5.5) ends the request:
``FCGI_END_REQUEST`` goes out and the id becomes inactive.

Choices the spec leaves open
----------------------------
* AUTHORIZER (6.3): complete when PARAMS ends.  Apache's mod_authnz_fcgi sends
  no STDIN, lighttpd an empty one; any STDIN that follows is accepted and
  dropped, and once the answer went out it is an inactive id's record anyway.
* FILTER (6.4): STDIN and DATA may interleave and end in either order.
  ``Limits.max_body`` bounds both together: the request's input.
* No padding on output: the spec only recommends it (3.3), and it costs bytes
  and a copy.  Input padding is skipped.
* ``FCGI_ABORT_REQUEST`` (5.4) once the environ went out gives
  ``RequestAborted``, and ``end_response`` then sends ``FCGI_END_REQUEST``
  (appStatus 0, and no STDOUT if none was sent).  Before that, nobody else
  knows the request: it is answered and forgotten here.
* ``abort_response`` shows a broken response by closing the connection
  without ``FCGI_END_REQUEST``; on a multiplexed connection that also ends
  the requests beside it (no front server we know of multiplexes).
* ``reject`` with a 503 ends with ``FCGI_OVERLOADED`` after the 503 itself on
  STDOUT, so front servers that ignore protocolStatus still relay an answer.
* More than ``Limits.max_streams`` open requests: the new one is refused with
  ``FCGI_OVERLOADED``; without multiplexing, with ``FCGI_CANT_MPX_CONN``.
* After any protocol error, limits included, ``error_response`` is ``b""``:
  the connection closes and the front server answers its client (a 502)
  itself.  ``RemoteProtocolError.status`` still says which limit it was.
"""

from __future__ import annotations

from . import Limits
from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    BODY_VIEW,
    BodyReceived,
    Chunk,
    Event,
    FilterDataReceived,
    RequestAborted,
    RequestComplete,
    RequestReceived,
    Role,
)
from .fastcgi_records import (
    BEGIN_BODY,
    BEGIN_REQUEST,
    CANT_MPX_CONN,
    DATA,
    GET_VALUES,
    GET_VALUES_RESULT,
    HEADER,
    KEEP_CONN,
    MAX_CONTENT,
    OVERLOADED,
    RECORD_NAMES,
    REQUEST_COMPLETE,
    STDIN,
    STDOUT,
    UNKNOWN_BODY,
    UNKNOWN_ROLE,
    UNKNOWN_TYPE,
    VERSION_1,
    decode_pairs,
    encode_pairs,
    end_request,
    end_tail,
    record,
    records,
)
from .fastcgi_states import (
    ABORTED,
    ENTER_ABORTED,
    ENTER_COMPLETE,
    ENTER_FORGOTTEN,
    FIRST_STATE,
    ON_DATA,
    ON_PARAMS,
    ON_PARAMS_END,
    ON_STDIN,
    ROLES,
    STEPS,
)
from .heads import cgi_head

__all__ = ["FastCGIServerProtocol"]


class _Request:
    __slots__ = ("id", "keep_conn", "params", "received", "responding", "role", "state")

    def __init__(self, request_id: int, role: Role, keep_conn: bool) -> None:
        self.id = request_id
        self.role = role
        self.keep_conn = keep_conn
        self.state = FIRST_STATE[role]
        # PARAMS content: the one record's bytes, or a bytearray from the
        # second record on (so one record costs no copy, many no quadratic one).
        self.params: Chunk = b""
        self.received = 0  # STDIN + DATA bytes
        self.responding = False  # STDOUT has opened


class FastCGIServerProtocol:
    """The server side of one FastCGI connection (see the module doc).

    ``max_conns``, ``max_reqs`` and ``multiplex`` are what ``FCGI_GET_VALUES``
    reports (4.1); ``multiplex`` also decides whether a second request may
    open beside the first.  ``roles`` lists the roles served; any other is
    refused with ``FCGI_UNKNOWN_ROLE``.
    """

    __slots__ = (
        "_broken",
        "_buffer",
        "_closing",
        "_replies",
        "_requests",
        "limits",
        "max_conns",
        "max_reqs",
        "multiplex",
        "roles",
    )

    def __init__(
        self,
        limits: Limits = Limits(),  # noqa: B008 - frozen, shared on purpose
        *,
        max_conns: int = 1000,
        max_reqs: int = 1000,
        multiplex: bool = True,
        roles: frozenset[Role] = frozenset(Role),
    ) -> None:
        # Built for every connection (lighttpd opens one per request): plain
        # attributes here, the GET_VALUES answer only when asked.
        self.limits = limits
        self.max_conns = max_conns
        self.max_reqs = max_reqs
        self.multiplex = multiplex
        self.roles = roles
        self._buffer = bytearray()  # a record not yet whole
        self._requests: dict[int, _Request] = {}
        self._replies: list[bytes] = []
        self._closing = False
        self._broken = False

    # -- receiving -------------------------------------------------------------
    def receive_data(self, data: bytes) -> list[Event]:
        if self._broken:
            raise LocalProtocolError("the connection already failed")
        events: list[Event] = []
        if not data:
            self._closing = True  # EOF: whatever was half received is dropped
            return events
        try:
            position = 0
            if self._buffer:
                # Complete the record already begun, then parse ``data``
                # itself (never copying it into the buffer whole).
                position, whole = self._complete_buffered(data)
                if whole is None:
                    return events
                self._parse_buffered(whole, events)
            position = self._parse(data, position, events)
            if position < len(data):
                self._buffer += memoryview(data)[position:]
        except RemoteProtocolError:
            self._broken = True
            self._closing = True
            raise
        return events

    def _complete_buffered(self, data: bytes) -> tuple[int, bytearray | None]:
        """Move bytes of ``data`` into the buffer until it holds one whole
        record; return how many were taken, and that record once whole."""
        buffer = self._buffer
        taken = 0
        if len(buffer) < 8:
            taken = 8 - len(buffer)
            buffer += data[:taken]
            if len(buffer) < 8:
                return taken, None
        version, _, _, length, padding = HEADER.unpack_from(buffer)
        if version != VERSION_1:
            raise RemoteProtocolError(f"FastCGI version {version}, not 1")
        size = 8 + length + padding
        need = size - len(buffer)
        buffer += memoryview(data)[taken : taken + need]
        taken += need
        if len(buffer) < size:
            return len(data), None
        # Handed over whole, not copied: a STDIN record's view may keep it.
        self._buffer = bytearray()
        return taken, buffer

    def _parse(self, source: bytes, position: int, events: list[Event]) -> int:
        """Handle every whole record of ``source`` from ``position``; return
        where the first incomplete one starts."""
        available = len(source)
        while available - position >= 8:
            # The header by byte reads (plain ints when compiled, where
            # HEADER.unpack_from builds a tuple of five boxed ones).
            version = source[position]
            if version != VERSION_1:
                raise RemoteProtocolError(f"FastCGI version {version}, not 1")
            kind = source[position + 1]
            request_id = source[position + 2] << 8 | source[position + 3]
            length = source[position + 4] << 8 | source[position + 5]
            start = position + 8
            end = start + length + source[position + 6]  # (+ padding)
            if end > available:
                break
            if length > BODY_VIEW and kind in (STDIN, DATA):
                content: Chunk = memoryview(source)[start : start + length]
            else:
                content = source[start : start + length]
            position = end
            self._record(kind, request_id, length, content, events)
        return position

    def _parse_buffered(self, record: bytearray, events: list[Event]) -> None:
        """Handle the one whole record ``_complete_buffered`` assembled."""
        fields: tuple[int, int, int, int, int] = HEADER.unpack_from(record)
        _, kind, request_id, length, _ = fields  # (the version was checked)
        if length > BODY_VIEW and kind in (STDIN, DATA):
            content: Chunk = memoryview(record)[8 : 8 + length]
        else:
            content = record[8 : 8 + length]
        self._record(kind, request_id, length, content, events)

    def _record(
        self, kind: int, request_id: int, length: int, content: Chunk, events: list[Event]
    ) -> None:
        """One record: a management record, a new request, or a step of one."""
        request = self._requests.get(request_id)
        if request is None:
            if request_id == 0:
                self._management(kind, content)
            elif kind == BEGIN_REQUEST:
                self._begin(request_id, content)
            return  # any other record for an inactive id: ignored (3.3)
        step = STEPS[request.state].get(kind if length else -kind)
        if step is None:
            name = RECORD_NAMES.get(kind, str(kind))
            raise RemoteProtocolError(
                f"{'empty ' if not length else ''}{name} record not allowed "
                f"for request {request_id} in state {request.state!r}"
            )
        request.state, action, entry = step
        # (an if-chain, not a table of functions: native calls when compiled)
        if action == ON_PARAMS:
            self._on_params(request, content)
        elif action == ON_PARAMS_END:
            self._on_params_end(request, events)
        elif action == ON_STDIN:
            self._count(request, len(content))
            events.append(BodyReceived(request.id, content))
        elif action == ON_DATA:
            self._count(request, len(content))
            events.append(FilterDataReceived(request.id, content))
        if entry == ENTER_COMPLETE:
            events.append(RequestComplete(request.id))
        elif entry == ENTER_ABORTED:
            events.append(RequestAborted(request.id))
        elif entry == ENTER_FORGOTTEN:
            self._replies.append(self._finish(request.id, REQUEST_COMPLETE))

    def _management(self, kind: int, content: Chunk) -> None:
        if kind == GET_VALUES:
            asked = decode_pairs(content, self.limits.max_header_count)
            values = {
                "FCGI_MAX_CONNS": str(self.max_conns),
                "FCGI_MAX_REQS": str(self.max_reqs),
                "FCGI_MPXS_CONNS": "1" if self.multiplex else "0",
            }
            known = [
                (name.encode("latin-1"), values[name].encode("latin-1"))
                for name in asked
                if name in values
            ]
            self._replies.append(record(GET_VALUES_RESULT, 0, encode_pairs(known)))
        else:
            self._replies.append(record(UNKNOWN_TYPE, 0, UNKNOWN_BODY.pack(kind)))

    def _begin(self, request_id: int, content: Chunk) -> None:
        if len(content) < BEGIN_BODY.size:
            raise RemoteProtocolError("FCGI_BEGIN_REQUEST body shorter than 8 bytes")
        fields: tuple[int, int] = BEGIN_BODY.unpack_from(content)
        role_number, flags = fields
        keep_conn = bool(flags & KEEP_CONN)
        role = ROLES.get(role_number)
        if self._requests and not self.multiplex:
            refusal = CANT_MPX_CONN
        elif len(self._requests) >= self.limits.max_streams:
            refusal = OVERLOADED
        elif role is None or role not in self.roles:
            refusal = UNKNOWN_ROLE
        else:
            self._requests[request_id] = _Request(request_id, role, keep_conn)
            return
        self._replies.append(end_request(request_id, refusal))
        if not keep_conn and not self._requests:
            self._closing = True

    # What a record does (unless its request's state drops input) ...
    def _on_params(self, request: _Request, content: Chunk) -> None:
        if request.params:
            if not isinstance(request.params, bytearray):
                request.params = bytearray(request.params)
            request.params += content
        else:
            request.params = content
        limit = self.limits.max_header_bytes
        if len(request.params) > limit:
            raise RemoteProtocolError(f"params over {limit} bytes", 431)

    def _on_params_end(self, request: _Request, events: list[Event]) -> None:
        environ = decode_pairs(request.params, self.limits.max_header_count)
        request.params = b""
        events.append(RequestReceived(request.id, environ, request.role))

    def _count(self, request: _Request, size: int) -> None:
        request.received += size
        limit = self.limits.max_body
        if limit and request.received > limit:
            raise RemoteProtocolError(f"request body over {limit} bytes", 413)

    def data_to_send(self) -> bytes:
        if not self._replies:
            return b""
        replies = b"".join(self._replies)
        self._replies.clear()
        return replies

    # -- responding --------------------------------------------------------------
    def start_response(
        self,
        stream_id: int,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        end: bool = False,
    ) -> bytes:
        parts = self._head(stream_id, status, headers, body)
        if end:
            parts.append(self._finish(stream_id, REQUEST_COMPLETE))
        return b"".join(parts)

    def send_body(self, stream_id: int, data: bytes) -> bytes:
        request = self._requests.get(stream_id)
        if request is None or not request.responding:
            raise LocalProtocolError(f"no response body is owed for request {stream_id}")
        if not data:
            return b""
        if len(data) <= MAX_CONTENT:
            return HEADER.pack(VERSION_1, STDOUT, stream_id, len(data), 0) + data
        return b"".join(records(STDOUT, stream_id, data))

    def end_response(self, stream_id: int) -> bytes:
        request = self._requests.get(stream_id)
        if request is None or not (request.responding or request.state == ABORTED):
            raise LocalProtocolError(f"no response end is owed for request {stream_id}")
        return self._finish(stream_id, REQUEST_COMPLETE)

    def reject(
        self, stream_id: int, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers = [*headers, ("Content-Length", str(len(body)))]
        parts = self._head(stream_id, status, headers, body)
        parts.append(
            self._finish(stream_id, OVERLOADED if status.startswith("503") else REQUEST_COMPLETE)
        )
        return b"".join(parts)

    def abort_response(self, stream_id: int) -> bytes:
        self._requests.pop(stream_id, None)
        self._closing = True
        return b""

    def error_response(self, error: RemoteProtocolError) -> bytes:
        # The record stream can no longer be trusted: nothing sensible to say.
        return b""

    def _head(
        self, stream_id: int, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> list[bytes | memoryview]:
        """The STDOUT records of the response head and ``body``, as pieces."""
        request = self._requests.get(stream_id)
        if request is None or request.responding:
            raise LocalProtocolError(f"no response head is owed for request {stream_id}")
        request.responding = True
        head = cgi_head(status, headers)
        size = len(head) + len(body)
        if size <= MAX_CONTENT:
            return [HEADER.pack(VERSION_1, STDOUT, stream_id, size, 0), head, body]
        return records(STDOUT, stream_id, head + body)

    def _finish(self, stream_id: int, protocol_status: int) -> bytes:
        """Forget the request; its closing records: the empty STDOUT (if the
        stream opened) and FCGI_END_REQUEST."""
        request = self._requests.pop(stream_id)
        if not request.keep_conn:
            self._closing = True
        if request.responding:
            return end_tail(stream_id, protocol_status)
        return end_request(stream_id, protocol_status)

    def raw_body_ok(self, stream_id: int) -> bool:
        """Never: every piece of a body goes in ``FCGI_STDOUT`` records."""
        return False

    def keeps_connection(self, stream_id: int) -> bool:
        """As the front asked in ``FCGI_BEGIN_REQUEST`` (``FCGI_KEEP_CONN``)."""
        request = self._requests.get(stream_id)
        return request is not None and request.keep_conn

    def take_over(self, stream_id: int) -> None:
        return None  # (a front never passes a WebSocket to FastCGI)

    def drain(self) -> None:
        """Nothing to do: the connection closes once its requests are
        answered, which front servers handle even with FCGI_KEEP_CONN."""

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def idle(self) -> bool:
        return not self._requests and not self._buffer
