"""FastCGI 1.0, server side, sans-IO.

Theory of operation (FastCGI Specification 1.0, sections 3 to 6)
----------------------------------------------------------------
A connection carries *records*: an 8-byte header (version, type, request id,
content length, padding length), the content, then the padding (3.3).
Records with request id 0 are management records: ``FCGI_GET_VALUES`` is
answered with ``FCGI_GET_VALUES_RESULT`` (4.1); any other type is answered
``FCGI_UNKNOWN_TYPE`` (4.2).  Every other record belongs to the request its id
names; a record for an id that is not active is ignored (3.3).

A request begins with ``FCGI_BEGIN_REQUEST`` (role and the ``FCGI_KEEP_CONN``
flag, 5.1), then the ``FCGI_PARAMS`` stream, then ``FCGI_STDIN`` and, for the
FILTER role, ``FCGI_DATA`` (6.4).  A stream is a run of records closed by an
empty one; its content is a byte stream whose record boundaries mean nothing,
so a name-value pair may straddle records.  PARAMS are therefore collected
whole (bounded by ``Limits.max_header_bytes``) and decoded once, straight into
the CGI environ (names and values latin-1, as PEP 3333 asks; duplicates: the
last wins, which is what nginx's ``fastcgi_param`` overrides mean).

Per request, ``TRANSITIONS`` says which stream record is legal in which state;
anything missing is a protocol error.  When every input stream has ended the
request is complete (``RequestComplete``) and waits for its response.

Choices the spec leaves open
----------------------------
* AUTHORIZER (6.3): the request is complete when PARAMS ends.  Apache's
  mod_authnz_fcgi sends no STDIN; lighttpd sends an empty one: a STDIN stream
  that follows is accepted and ignored.
* No padding on output: it is a recommendation (3.3), and costs bytes.
* ``FCGI_ABORT_REQUEST`` (5.4) gives ``RequestAborted``; the request stays
  known until the connection calls ``end_response``, which sends
  ``FCGI_END_REQUEST`` with appStatus 0.
* A broken response (``abort_response``) is shown by closing the connection
  without ``FCGI_END_REQUEST``; on a multiplexed connection that also ends the
  other requests on it (no front server we know of multiplexes).
* ``reject`` with a 503 ends the request with ``FCGI_OVERLOADED`` (after the
  503 itself on STDOUT, so front servers that ignore protocolStatus still
  relay a proper answer).
* Too many concurrent requests on one connection (``Limits.max_streams``):
  the new one ends at once with ``FCGI_OVERLOADED``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from . import Limits
from .cgihead import cgi_head
from .errors import LocalProtocolError, RemoteProtocolError
from .events import (
    BodyReceived,
    Event,
    FilterDataReceived,
    RequestAborted,
    RequestComplete,
    RequestReceived,
    Role,
)

__all__ = [
    "HEADER",
    "VERSION_1",
    "FastCGIServerProtocol",
    "decode_pairs",
    "encode_pairs",
]

VERSION_1 = 1

# Record types (section 8).
BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11

KEEP_CONN = 1

# protocolStatus of FCGI_END_REQUEST (5.5).
REQUEST_COMPLETE = 0
CANT_MPX_CONN = 1
OVERLOADED = 2
UNKNOWN_ROLE = 3

HEADER = struct.Struct(">BBHHBx")
BEGIN_BODY = struct.Struct(">HB5x")
END_BODY = struct.Struct(">IB3x")
UNKNOWN_BODY = struct.Struct(">B7x")
LENGTH4 = struct.Struct(">I")
MAX_CONTENT = 0xFFFF

# Per-request states.
RECEIVING_PARAMS = "params"
RECEIVING_INPUT = "input"  # PARAMS ended; STDIN (and DATA) flowing
COMPLETE = "complete"  # every input stream ended; the response is owed
ABORTED = "aborted"  # FCGI_ABORT_REQUEST seen; only END_REQUEST is owed

#: (state, record type) -> state after a *non-empty* record of that type.
#: Empty records (stream ends) are handled by ``_end_stream``; both use this
#: table to decide legality.
TRANSITIONS: dict[tuple[str, int], str] = {
    (RECEIVING_PARAMS, PARAMS): RECEIVING_PARAMS,
    (RECEIVING_INPUT, STDIN): RECEIVING_INPUT,
    (RECEIVING_INPUT, DATA): RECEIVING_INPUT,
    # An authorizer is complete at the end of PARAMS; lighttpd still sends an
    # (empty) STDIN afterwards.
    (COMPLETE, STDIN): COMPLETE,
    # The web server may still be sending input when it aborts.
    (ABORTED, STDIN): ABORTED,
    (ABORTED, DATA): ABORTED,
    (ABORTED, PARAMS): ABORTED,
}


def _record(kind: int, request_id: int, content: bytes) -> bytes:
    """One record (content at most 65535 bytes), without padding."""
    return HEADER.pack(VERSION_1, kind, request_id, len(content), 0) + content


def _stream(kind: int, request_id: int, data: bytes) -> bytes:
    """``data`` as as many records as it takes (never an empty one)."""
    if len(data) <= MAX_CONTENT:
        return HEADER.pack(VERSION_1, kind, request_id, len(data), 0) + data
    view = memoryview(data)
    return b"".join(
        HEADER.pack(VERSION_1, kind, request_id, len(view[i : i + MAX_CONTENT]), 0)
        + view[i : i + MAX_CONTENT]
        for i in range(0, len(data), MAX_CONTENT)
    )


def _end_request(request_id: int, protocol_status: int, app_status: int = 0) -> bytes:
    return HEADER.pack(VERSION_1, END_REQUEST, request_id, 8, 0) + END_BODY.pack(
        app_status, protocol_status
    )


def encode_pairs(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Name-value pairs (3.4): 1-byte lengths below 128, 4-byte otherwise."""
    out = bytearray()
    for name, value in pairs:
        for part in (name, value):
            size = len(part)
            if size < 0x80:
                out.append(size)
            else:
                out += LENGTH4.pack(size | 0x80000000)
        out += name
        out += value
    return bytes(out)


def decode_pairs(data: bytes, max_count: int = 0) -> dict[str, str]:
    """Name-value pairs -> ``{name: value}`` (latin-1; the last duplicate wins).

    Raises :class:`RemoteProtocolError` for a truncated pair, or more than
    ``max_count`` pairs (431) when ``max_count`` is set.
    """
    # Decode the block once; latin-1 maps byte i to character i, so the
    # lengths read from the bytes index the text directly.
    text = data.decode("latin-1")
    pairs: dict[str, str] = {}
    position = 0
    end = len(data)
    unpack = LENGTH4.unpack_from
    try:
        while position < end:
            name_length = data[position]
            if name_length & 0x80:
                name_length = unpack(data, position)[0] & 0x7FFFFFFF
                position += 4
            else:
                position += 1
            value_length = data[position]
            if value_length & 0x80:
                value_length = unpack(data, position)[0] & 0x7FFFFFFF
                position += 4
            else:
                position += 1
            name_end = position + name_length
            value_end = name_end + value_length
            if value_end > end:
                raise RemoteProtocolError("name-value pair runs past its stream")
            pairs[text[position:name_end]] = text[name_end:value_end]
            position = value_end
    except (IndexError, struct.error):
        raise RemoteProtocolError("truncated name-value pair") from None
    # Counted once at the end: the block's size is already bounded.
    if max_count and len(pairs) > max_count:
        raise RemoteProtocolError(f"more than {max_count} params", 431)
    return pairs


class _Request:
    __slots__ = ("data_open", "keep_conn", "params", "received", "role", "state", "stdin_open")

    def __init__(self, role: Role, keep_conn: bool) -> None:
        self.role = role
        self.keep_conn = keep_conn
        self.state = RECEIVING_PARAMS
        self.params = bytearray()
        self.stdin_open = role is not Role.AUTHORIZER
        self.data_open = role is Role.FILTER
        self.received = 0


class FastCGIServerProtocol:
    """The server side of one FastCGI connection (see the module doc)."""

    def __init__(
        self,
        limits: Limits = Limits(),  # noqa: B008 - frozen, shared on purpose
        *,
        max_conns: int = 1000,
        max_reqs: int = 1000,
        multiplex: bool = True,
        roles: frozenset[Role] = frozenset(Role),
    ) -> None:
        self.limits = limits
        self.multiplex = multiplex
        self.roles = roles
        self._values = {
            "FCGI_MAX_CONNS": str(max_conns),
            "FCGI_MAX_REQS": str(max_reqs),
            "FCGI_MPXS_CONNS": "1" if multiplex else "0",
        }
        self._buffer = bytearray()
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
            self._closing = True
            return events
        buffer = self._buffer
        if buffer:
            buffer += data
            source: bytes | bytearray = buffer
        else:
            source = data
        position = 0
        available = len(source)
        unpack = HEADER.unpack_from
        try:
            while available - position >= 8:
                version, kind, request_id, length, padding = unpack(source, position)
                if version != VERSION_1:
                    raise RemoteProtocolError(f"FastCGI version {version}, not 1")
                start = position + 8
                end = start + length + padding
                if end > available:
                    break
                content = bytes(source[start : start + length])
                position = end
                if request_id == 0:
                    self._management(kind, content)
                else:
                    self._application(kind, request_id, content, events)
        except RemoteProtocolError:
            self._broken = True
            self._closing = True
            raise
        if source is buffer:
            del buffer[:position]
        elif position < available:
            self._buffer = bytearray(source[position:])
        return events

    def _management(self, kind: int, content: bytes) -> None:
        if kind == GET_VALUES:
            asked = decode_pairs(content, self.limits.max_header_count)
            known = [
                (name.encode("latin-1"), self._values[name].encode("latin-1"))
                for name in asked
                if name in self._values
            ]
            self._replies.append(_record(GET_VALUES_RESULT, 0, encode_pairs(known)))
        else:
            self._replies.append(_record(UNKNOWN_TYPE, 0, UNKNOWN_BODY.pack(kind)))

    def _application(self, kind: int, request_id: int, content: bytes, events: list[Event]) -> None:
        if kind == BEGIN_REQUEST:
            self._begin(request_id, content)
            return
        request = self._requests.get(request_id)
        if request is None:
            return  # inactive id: ignored (3.3)
        if kind == ABORT_REQUEST:
            if request.state != ABORTED:
                request.state = ABORTED
                events.append(RequestAborted(request_id))
            return
        state = TRANSITIONS.get((request.state, kind))
        if state is None:
            raise RemoteProtocolError(
                f"record type {kind} not allowed for request {request_id} in state {request.state}"
            )
        if request.state == ABORTED or (request.state == COMPLETE and kind == STDIN):
            return  # input nobody will read
        if kind == PARAMS:
            if content:
                request.params += content
                if len(request.params) > self.limits.max_header_bytes:
                    raise RemoteProtocolError(
                        f"params over {self.limits.max_header_bytes} bytes", 431
                    )
                return
            environ = decode_pairs(bytes(request.params), self.limits.max_header_count)
            request.params = bytearray()
            events.append(RequestReceived(request_id, environ, request.role))
            request.state = RECEIVING_INPUT
            self._maybe_complete(request_id, request, events)
            return
        if kind == STDIN and not request.stdin_open:
            return  # a STDIN stream already ended may not reopen; ignore
        if content:
            request.received += len(content)
            if self.limits.max_body and request.received > self.limits.max_body:
                raise RemoteProtocolError(f"body over {self.limits.max_body} bytes", 413)
            if kind == STDIN:
                events.append(BodyReceived(request_id, content))
            else:
                events.append(FilterDataReceived(request_id, content))
            return
        if kind == STDIN:
            request.stdin_open = False
        else:
            request.data_open = False
        self._maybe_complete(request_id, request, events)

    def _maybe_complete(self, request_id: int, request: _Request, events: list[Event]) -> None:
        if not request.stdin_open and not request.data_open:
            request.state = COMPLETE
            if request.role is Role.AUTHORIZER:
                request.stdin_open = True  # accept and drop lighttpd's empty STDIN
            events.append(RequestComplete(request_id))

    def _begin(self, request_id: int, content: bytes) -> None:
        if len(content) < BEGIN_BODY.size:
            raise RemoteProtocolError("short FCGI_BEGIN_REQUEST body")
        role_number, flags = BEGIN_BODY.unpack_from(content)
        if request_id in self._requests:
            raise RemoteProtocolError(f"FCGI_BEGIN_REQUEST for active request {request_id}")
        keep_conn = bool(flags & KEEP_CONN)
        refusal = None
        if self._requests and not self.multiplex:
            refusal = CANT_MPX_CONN
        elif len(self._requests) >= self.limits.max_streams:
            refusal = OVERLOADED
        elif role_number not in Role._value2member_map_ or Role(role_number) not in self.roles:
            refusal = UNKNOWN_ROLE
        if refusal is not None:
            self._replies.append(_end_request(request_id, refusal))
            if not keep_conn and not self._requests:
                self._closing = True
            return
        self._requests[request_id] = _Request(Role(role_number), keep_conn)

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
        self._owed(stream_id)
        head = cgi_head(status, headers)
        out = _stream(STDOUT, stream_id, head + body if body else head)
        if end:
            return out + self._end(stream_id, REQUEST_COMPLETE)
        return out

    def send_body(self, stream_id: int, data: bytes) -> bytes:
        self._owed(stream_id)
        return _stream(STDOUT, stream_id, data) if data else b""

    def end_response(self, stream_id: int) -> bytes:
        self._owed(stream_id)
        return self._end(stream_id, REQUEST_COMPLETE)

    def reject(
        self, stream_id: int, status: str, headers: list[tuple[str, str]], body: bytes
    ) -> bytes:
        head = self.start_response(
            stream_id, status, [*headers, ("Content-Length", str(len(body)))], body
        )
        protocol_status = OVERLOADED if status.startswith("503") else REQUEST_COMPLETE
        return head + self._end(stream_id, protocol_status)

    def abort_response(self, stream_id: int) -> bytes:
        self._requests.pop(stream_id, None)
        self._closing = True
        return b""

    def error_response(self, error: RemoteProtocolError) -> bytes:
        # The record stream can no longer be trusted: nothing sensible to say.
        return b""

    def _owed(self, stream_id: int) -> None:
        if stream_id not in self._requests:
            raise LocalProtocolError(f"no response is owed for request {stream_id}")

    def _end(self, stream_id: int, protocol_status: int) -> bytes:
        request = self._requests.pop(stream_id)
        out = _record(STDOUT, stream_id, b"") + _end_request(stream_id, protocol_status)
        if not request.keep_conn:
            self._closing = True
        return out

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def idle(self) -> bool:
        return not self._requests and not self._buffer
