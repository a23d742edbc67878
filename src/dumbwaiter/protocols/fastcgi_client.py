"""FastCGI 1.0, client side (the web server's part), sans-IO.

Used by the tests and by ``dumbwaiter request``.  It speaks what lighttpd and
nginx speak: BEGIN_REQUEST, PARAMS, STDIN (and DATA for a FILTER),
ABORT_REQUEST and GET_VALUES out (5.1-5.4, 4.1); STDOUT, STDERR, END_REQUEST,
GET_VALUES_RESULT and UNKNOWN_TYPE in, as :data:`ClientEvent` objects.  Each
``send_*`` method returns the bytes to write; a stream ends with an empty
``send_params`` / ``send_stdin`` / ``send_data`` call, as on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import RemoteProtocolError
from .events import Role
from .fastcgi_records import (
    ABORT_REQUEST,
    BEGIN_BODY,
    BEGIN_REQUEST,
    DATA,
    END_BODY,
    END_REQUEST,
    GET_VALUES,
    GET_VALUES_RESULT,
    HEADER,
    KEEP_CONN,
    PARAMS,
    STDERR,
    STDIN,
    STDOUT,
    UNKNOWN_BODY,
    UNKNOWN_TYPE,
    VERSION_1,
    decode_pairs,
    encode_pairs,
    record,
    records,
)

__all__ = [
    "ClientEvent",
    "EndRequest",
    "FastCGIClientProtocol",
    "GetValuesResult",
    "Stderr",
    "Stdout",
    "UnknownType",
    "parse_cgi_response",
]


@dataclass(slots=True)
class Stdout:
    """A piece of a request's FCGI_STDOUT (never the empty end record)."""

    request_id: int
    data: bytes


@dataclass(slots=True)
class Stderr:
    """A piece of a request's FCGI_STDERR."""

    request_id: int
    data: bytes


@dataclass(slots=True)
class EndRequest:
    """FCGI_END_REQUEST (5.5): the request is over; its id is free again."""

    request_id: int
    app_status: int
    protocol_status: int


@dataclass(slots=True)
class GetValuesResult:
    """The answer to :meth:`FastCGIClientProtocol.send_get_values` (4.1)."""

    values: dict[str, str]


@dataclass(slots=True)
class UnknownType:
    """The server did not understand a management record of this type (4.2)."""

    record_type: int


ClientEvent = Stdout | Stderr | EndRequest | GetValuesResult | UnknownType

Pairs = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str | bytes, str | bytes]]


def _latin1(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


class FastCGIClientProtocol:
    """One client connection; request ids are allocated 1, 2, 3 ...

    ``pad`` pads every record to a multiple of 8 bytes, as nginx does
    (lighttpd does not).
    """

    __slots__ = ("_buffer", "_next_id", "_requests", "pad")

    def __init__(self, pad: bool = False) -> None:
        self.pad = pad
        self._next_id = 1
        self._buffer = bytearray()
        self._requests: dict[int, tuple[Role, bool]] = {}

    @property
    def outstanding(self) -> list[int]:
        """Ids of the requests begun and not yet ended by the server."""
        return list(self._requests)

    def begin_request(self, role: Role = Role.RESPONDER, keep_conn: bool = False) -> int:
        """Allocate the next request id; :meth:`send_begin` opens it."""
        request_id = self._next_id
        self._next_id += 1
        self._requests[request_id] = (role, keep_conn)
        return request_id

    def send_begin(self, request_id: int) -> bytes:
        """FCGI_BEGIN_REQUEST with the role and flag given to :meth:`begin_request`."""
        role, keep_conn = self._requests[request_id]
        body = BEGIN_BODY.pack(int(role), KEEP_CONN if keep_conn else 0)
        return record(BEGIN_REQUEST, request_id, body, self.pad)

    def send_params(self, request_id: int, params: Pairs) -> bytes:
        """PARAMS records for ``params`` (str is encoded latin-1); empty
        ``params`` gives the empty record that ends the stream."""
        items = params.items() if isinstance(params, Mapping) else params
        return self._stream(
            PARAMS, request_id, encode_pairs((_latin1(n), _latin1(v)) for n, v in items)
        )

    def send_stdin(self, request_id: int, data: bytes) -> bytes:
        """STDIN records; ``b""`` ends the stream."""
        return self._stream(STDIN, request_id, data)

    def send_data(self, request_id: int, data: bytes) -> bytes:
        """DATA records (FILTER role); ``b""`` ends the stream."""
        return self._stream(DATA, request_id, data)

    def send_abort(self, request_id: int) -> bytes:
        """FCGI_ABORT_REQUEST (5.4); the server still answers with END_REQUEST."""
        return record(ABORT_REQUEST, request_id, b"", self.pad)

    def send_get_values(self, names: Iterable[str]) -> bytes:
        """FCGI_GET_VALUES asking for ``names`` (4.1)."""
        data = encode_pairs((name.encode("latin-1"), b"") for name in names)
        return record(GET_VALUES, 0, data, self.pad)

    def _stream(self, kind: int, request_id: int, data: bytes) -> bytes:
        if not data:
            return record(kind, request_id, b"", self.pad)
        return b"".join(records(kind, request_id, data, self.pad))

    def receive_data(self, data: bytes) -> list[ClientEvent]:
        """Feed bytes from the server; return the events they complete.

        Raises :class:`RemoteProtocolError` for a record a server must not
        send.  ``b""`` (EOF) returns no events: check :attr:`outstanding`.
        """
        buffer = self._buffer
        buffer += data
        events: list[ClientEvent] = []
        position = 0
        while len(buffer) - position >= 8:
            version, kind, request_id, length, padding = HEADER.unpack_from(buffer, position)
            if version != VERSION_1:
                raise RemoteProtocolError(f"FastCGI version {version}, not 1")
            end = position + 8 + length + padding
            if end > len(buffer):
                break
            content = bytes(buffer[position + 8 : position + 8 + length])
            position = end
            events += self._record(kind, request_id, content)
        del buffer[:position]
        return events

    def _record(self, kind: int, request_id: int, content: bytes) -> list[ClientEvent]:
        if kind == STDOUT:
            return [Stdout(request_id, content)] if content else []
        if kind == STDERR:
            return [Stderr(request_id, content)] if content else []
        if kind == END_REQUEST and len(content) >= END_BODY.size:
            app_status, protocol_status = END_BODY.unpack_from(content)
            self._requests.pop(request_id, None)
            return [EndRequest(request_id, app_status, protocol_status)]
        if kind == GET_VALUES_RESULT and request_id == 0:
            return [GetValuesResult(decode_pairs(content))]
        if kind == UNKNOWN_TYPE and request_id == 0 and len(content) >= UNKNOWN_BODY.size:
            return [UnknownType(UNKNOWN_BODY.unpack_from(content)[0])]
        raise RemoteProtocolError(
            f"unexpected record from the server: type {kind}, id {request_id}, "
            f"{len(content)} content bytes"
        )


def parse_cgi_response(data: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """A CGI response (RFC 3875 section 6: header lines, a blank line, the
    body) -> ``(status, reason, headers, body)``.

    ``Status:`` gives the status and is not among the headers; without it the
    status is 302 Found when there is a ``Location:`` (6.3.3), else 200 OK.
    Lines may end in CRLF or LF.  Raises :class:`RemoteProtocolError` when the
    head has no end or a line is malformed.
    """
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if lf != -1 and (crlf == -1 or lf < crlf):
        head, body = data[:lf], data[lf + 2 :]
    elif crlf != -1:
        head, body = data[:crlf], data[crlf + 4 :]
    else:
        raise RemoteProtocolError("no end of the response head")
    status: int | None = None
    reason = ""
    headers: list[tuple[str, str]] = []
    # Split at LF only: str.splitlines() also breaks at a bare CR, \x0b, \x0c,
    # \x1c-\x1e and \x85, octets a header value may hold (obs-text), and
    # str.strip() eats \xa0; the whitespace around a value is SP and HTAB.
    for line in head.decode("latin-1").split("\n") if head else []:
        line = line.removesuffix("\r")
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip(" \t"):
            raise RemoteProtocolError(f"bad response header line {line!r}")
        value = value.strip(" \t")
        if name.lower() == "status":
            code, _, reason = value.partition(" ")
            if len(code) != 3 or not (code.isascii() and code.isdigit()):
                raise RemoteProtocolError(f"bad Status: {value!r}")
            status = int(code)
        else:
            headers.append((name, value))
    if status is None:
        if any(name.lower() == "location" for name, _ in headers):
            status, reason = 302, "Found"
        else:
            status, reason = 200, "OK"
    return status, reason, headers, body
