"""FastCGI 1.0, client side (the web server's role), sans-IO.

Used by the tests and by ``dumbwaiter request``.  It speaks what lighttpd and
nginx speak: BEGIN_REQUEST, PARAMS, STDIN (and DATA for FILTER), ABORT and
GET_VALUES out; STDOUT, STDERR, END_REQUEST, GET_VALUES_RESULT and
UNKNOWN_TYPE in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import RemoteProtocolError
from .events import Role
from .fastcgi import (
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
    MAX_CONTENT,
    PARAMS,
    STDERR,
    STDIN,
    STDOUT,
    UNKNOWN_BODY,
    UNKNOWN_TYPE,
    VERSION_1,
    decode_pairs,
    encode_pairs,
)

__all__ = [
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
    request_id: int
    data: bytes


@dataclass(slots=True)
class Stderr:
    request_id: int
    data: bytes


@dataclass(slots=True)
class EndRequest:
    request_id: int
    app_status: int
    protocol_status: int


@dataclass(slots=True)
class GetValuesResult:
    values: dict[str, str]


@dataclass(slots=True)
class UnknownType:
    record_type: int


ClientEvent = Stdout | Stderr | EndRequest | GetValuesResult | UnknownType

Pairs = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str | bytes, str | bytes]]


def _records(kind: int, request_id: int, data: bytes) -> bytes:
    if not data:
        return HEADER.pack(VERSION_1, kind, request_id, 0, 0)
    out = []
    for start in range(0, len(data), MAX_CONTENT):
        chunk = data[start : start + MAX_CONTENT]
        padding = -len(chunk) % 8  # the client pads, as the spec recommends
        out.append(
            HEADER.pack(VERSION_1, kind, request_id, len(chunk), padding) + chunk + b"\0" * padding
        )
    return b"".join(out)


def _latin1(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


class FastCGIClientProtocol:
    """One client connection; request ids are allocated 1, 2, 3 ..."""

    def __init__(self) -> None:
        self._next_id = 1
        self._buffer = bytearray()
        self._roles: dict[int, tuple[Role, bool]] = {}

    def begin_request(self, role: Role = Role.RESPONDER, keep_conn: bool = False) -> int:
        request_id = self._next_id
        self._next_id += 1
        self._roles[request_id] = (role, keep_conn)
        return request_id

    def send_begin(self, request_id: int) -> bytes:
        role, keep_conn = self._roles[request_id]
        body = BEGIN_BODY.pack(int(role), KEEP_CONN if keep_conn else 0)
        return HEADER.pack(VERSION_1, BEGIN_REQUEST, request_id, len(body), 0) + body

    def send_params(self, request_id: int, params: Pairs) -> bytes:
        """PARAMS records; an empty ``params`` ends the stream."""
        items = params.items() if isinstance(params, Mapping) else params
        data = encode_pairs((_latin1(n), _latin1(v)) for n, v in items)
        return _records(PARAMS, request_id, data)

    def send_stdin(self, request_id: int, data: bytes) -> bytes:
        """STDIN records; ``b""`` ends the stream."""
        return _records(STDIN, request_id, data)

    def send_data(self, request_id: int, data: bytes) -> bytes:
        """DATA records (FILTER role); ``b""`` ends the stream."""
        return _records(DATA, request_id, data)

    def send_abort(self, request_id: int) -> bytes:
        return HEADER.pack(VERSION_1, ABORT_REQUEST, request_id, 0, 0)

    def send_get_values(self, names: Iterable[str]) -> bytes:
        data = encode_pairs((name.encode("latin-1"), b"") for name in names)
        return _records(GET_VALUES, 0, data)

    def receive_data(self, data: bytes) -> list[ClientEvent]:
        self._buffer += data
        events: list[ClientEvent] = []
        buffer = self._buffer
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
            if kind == STDOUT:
                if content:
                    events.append(Stdout(request_id, content))
            elif kind == STDERR:
                if content:
                    events.append(Stderr(request_id, content))
            elif kind == END_REQUEST:
                app_status, protocol_status = END_BODY.unpack_from(content)
                self._roles.pop(request_id, None)
                events.append(EndRequest(request_id, app_status, protocol_status))
            elif kind == GET_VALUES_RESULT:
                events.append(GetValuesResult(decode_pairs(content)))
            elif kind == UNKNOWN_TYPE:
                events.append(UnknownType(UNKNOWN_BODY.unpack_from(content)[0]))
            else:
                raise RemoteProtocolError(f"unexpected record type {kind} from the server")
        del buffer[:position]
        return events


def parse_cgi_response(data: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """A CGI response (``Status:`` + headers, blank line, body) ->
    ``(status, reason, headers, body)``; no Status header means 200 OK."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        head, separator, body = data.partition(b"\n\n")
    if not separator:
        raise RemoteProtocolError("no end of the response head")
    status, reason = 200, "OK"
    headers = []
    for line in head.decode("latin-1").splitlines():
        name, colon, value = line.partition(":")
        if not colon:
            raise RemoteProtocolError(f"bad response header line {line!r}")
        value = value.strip()
        if name.lower() == "status":
            code, _, reason = value.partition(" ")
            status = int(code)
        else:
            headers.append((name, value))
    return status, reason, headers, body
