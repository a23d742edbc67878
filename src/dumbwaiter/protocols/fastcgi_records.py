"""FastCGI 1.0 records and name-value pairs, shared by server and client.

The wire format (FastCGI Specification 1.0): a record is an 8-byte header
(version, type, request id, content length, padding length, one reserved
byte), the content, then the padding (3.3); a name-value pair is two lengths,
each one byte below 128 or four bytes with the high bit set, then the name and
the value (3.4).  The numbers below are section 8's.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from .errors import RemoteProtocolError

__all__ = [
    "ABORT_REQUEST",
    "BEGIN_BODY",
    "BEGIN_REQUEST",
    "CANT_MPX_CONN",
    "DATA",
    "END_BODY",
    "END_REQUEST",
    "END_TAIL",
    "GET_VALUES",
    "GET_VALUES_RESULT",
    "HEADER",
    "KEEP_CONN",
    "MAX_CONTENT",
    "OVERLOADED",
    "PARAMS",
    "RECORD_NAMES",
    "REQUEST_COMPLETE",
    "STDERR",
    "STDIN",
    "STDOUT",
    "UNKNOWN_BODY",
    "UNKNOWN_ROLE",
    "UNKNOWN_TYPE",
    "VERSION_1",
    "decode_pairs",
    "encode_pairs",
    "end_request",
    "end_tail",
    "record",
    "records",
]

VERSION_1: Final = 1

# Record types (8).
BEGIN_REQUEST: Final = 1
ABORT_REQUEST: Final = 2
END_REQUEST: Final = 3
PARAMS: Final = 4
STDIN: Final = 5
STDOUT: Final = 6
STDERR: Final = 7
DATA: Final = 8
GET_VALUES: Final = 9
GET_VALUES_RESULT: Final = 10
UNKNOWN_TYPE: Final = 11

RECORD_NAMES: Final = {
    BEGIN_REQUEST: "BEGIN_REQUEST",
    ABORT_REQUEST: "ABORT_REQUEST",
    END_REQUEST: "END_REQUEST",
    PARAMS: "PARAMS",
    STDIN: "STDIN",
    STDOUT: "STDOUT",
    STDERR: "STDERR",
    DATA: "DATA",
    GET_VALUES: "GET_VALUES",
    GET_VALUES_RESULT: "GET_VALUES_RESULT",
    UNKNOWN_TYPE: "UNKNOWN_TYPE",
}

#: The one flag of FCGI_BEGIN_REQUEST (5.1).
KEEP_CONN: Final = 1

# protocolStatus of FCGI_END_REQUEST (5.5).
REQUEST_COMPLETE: Final = 0
CANT_MPX_CONN: Final = 1
OVERLOADED: Final = 2
UNKNOWN_ROLE: Final = 3

HEADER: Final = struct.Struct(">BBHHBx")
BEGIN_BODY: Final = struct.Struct(">HB5x")  # role, flags (5.1)
END_BODY: Final = struct.Struct(">IB3x")  # appStatus, protocolStatus (5.5)
UNKNOWN_BODY: Final = struct.Struct(">B7x")  # the type not understood (4.2)
#: The end of a response in one pack (see ``end_tail``).
END_TAIL: Final = struct.Struct(">BBHHBxBBHHBxIB3x")
LENGTH4: Final = struct.Struct(">I")
MAX_CONTENT: Final = 0xFFFF


def record(kind: int, request_id: int, content: bytes = b"", pad: bool = False) -> bytes:
    """One record of at most ``MAX_CONTENT`` bytes; ``pad`` rounds it up to a
    multiple of 8 bytes, as the spec recommends (3.3) but nobody needs."""
    padding = -len(content) % 8 if pad else 0
    return b"".join(
        (HEADER.pack(VERSION_1, kind, request_id, len(content), padding), content, bytes(padding))
    )


def records(kind: int, request_id: int, data: bytes, pad: bool = False) -> list[bytes | memoryview]:
    """``data`` (non-empty) as a stream's records of up to ``MAX_CONTENT``
    bytes each, as pieces to join (unpadded records point into ``data``:
    joining them is the one copy); an empty record, which would end the
    stream, is never among them."""
    if len(data) <= MAX_CONTENT and not pad:
        return [HEADER.pack(VERSION_1, kind, request_id, len(data), 0), data]
    view = memoryview(data)
    if pad:
        return [
            record(kind, request_id, bytes(view[start : start + MAX_CONTENT]), pad)
            for start in range(0, len(data), MAX_CONTENT)
        ]
    pieces: list[bytes | memoryview] = []
    for start in range(0, len(data), MAX_CONTENT):
        content = view[start : start + MAX_CONTENT]
        pieces += (HEADER.pack(VERSION_1, kind, request_id, len(content), 0), content)
    return pieces


def end_request(request_id: int, protocol_status: int, app_status: int = 0) -> bytes:
    """FCGI_END_REQUEST alone (5.5), for a request whose STDOUT never opened."""
    return HEADER.pack(VERSION_1, END_REQUEST, request_id, 8, 0) + END_BODY.pack(
        app_status, protocol_status
    )


#: ``end_tail(1, REQUEST_COMPLETE)``, built once: front servers number a
#: connection's one request 1.
END_TAIL_1: Final = END_TAIL.pack(
    *(VERSION_1, STDOUT, 1, 0, 0),
    *(VERSION_1, END_REQUEST, 1, END_BODY.size, 0),
    0,
    REQUEST_COMPLETE,
)


def end_tail(request_id: int, protocol_status: int, app_status: int = 0) -> bytes:
    """The empty STDOUT record that ends the stream, then FCGI_END_REQUEST."""
    if request_id == 1 and protocol_status == app_status == 0:
        return END_TAIL_1  # what nearly every response ends with
    return END_TAIL.pack(
        *(VERSION_1, STDOUT, request_id, 0, 0),
        *(VERSION_1, END_REQUEST, request_id, END_BODY.size, 0),
        *(app_status, protocol_status),
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


def decode_pairs(data: bytes | bytearray | memoryview, max_count: int = 0) -> dict[str, str]:
    """Name-value pairs -> ``{name: value}``, decoded latin-1 (PEP 3333).

    Duplicate names: the last one wins (nginx's ``fastcgi_param`` overrides
    after ``include fastcgi_params`` mean exactly that).  Raises
    :class:`RemoteProtocolError` for a pair cut short by the end of ``data``,
    or for more than ``max_count`` distinct names (431) when it is set.
    """
    # Decode the block once: latin-1 maps byte i to character i, so the
    # lengths read from the bytes index the text directly.
    # As bytes, indexing is a plain byte read when compiled (the block is
    # small: at most the params limit).
    raw = data if type(data) is bytes else bytes(data)
    text = raw.decode("latin-1")
    pairs: dict[str, str] = {}
    position = 0
    end = len(raw)
    unpack = LENGTH4.unpack_from
    try:
        while position < end:
            name_length = raw[position]
            value_length = raw[position + 1]
            if name_length < 0x80 and value_length < 0x80:
                position += 2  # both short: nearly every CGI variable
            else:
                if name_length < 0x80:
                    position += 1
                else:
                    name_length = unpack(raw, position)[0] & 0x7FFFFFFF
                    position += 4
                value_length = raw[position]
                if value_length < 0x80:
                    position += 1
                else:
                    value_length = unpack(raw, position)[0] & 0x7FFFFFFF
                    position += 4
            name_end = position + name_length
            value_end = name_end + value_length
            if value_end > end:
                raise RemoteProtocolError("name-value pair runs past the end of its stream")
            pairs[text[position:name_end]] = text[name_end:value_end]
            position = value_end
    except (IndexError, struct.error):
        raise RemoteProtocolError("name-value pair lengths cut short") from None
    # Counted once at the end: the block's size is already bounded.
    if max_count and len(pairs) > max_count:
        raise RemoteProtocolError(f"more than {max_count} params", 431)
    return pairs
