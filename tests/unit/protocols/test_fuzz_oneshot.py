"""SCGI and the uwsgi protocol under hypothesis: properties for any input.

* the encoders round-trip through the parsers for any latin-1 environ and
  body, at the framing boundaries (uwsgi's 16-bit sizes, SCGI's netstring),
  whatever the chunking;
* any proper prefix but the empty one (a probe) is "cut short" at EOF,
  never a complete request;
* mutated requests give events or ``RemoteProtocolError`` only, the same
  status however fed;
* every limit: at the limit accepted, one past refused with its status;
* start_response/send_body/end_response, reject and error_response parse
  back exactly through what the front server reads (a CGI response for
  SCGI, HTTP/1.1 ending at the close for uwsgi).

``HYPOTHESIS_PROFILE=fuzz`` multiplies every budget here by 1000.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dumbwaiter.protocols import (
    BodyReceived,
    Event,
    Limits,
    RemoteProtocolError,
    RequestComplete,
    RequestReceived,
    scgi,
    uwsgi,
)
from dumbwaiter.protocols.fastcgi_client import parse_cgi_response
from dumbwaiter.protocols.http_client import Data, HTTPClientProtocol, Response
from dumbwaiter.protocols.oneshot import OneShotServerProtocol

#: Under HYPOTHESIS_PROFILE=fuzz every budget grows by FUZZ_SCALE (default 1000).
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
SCALE = int(os.environ.get("FUZZ_SCALE", "1000")) if FUZZ else 1
KINDS: dict[str, tuple[Callable[..., OneShotServerProtocol], Callable[..., bytes]]] = {
    "scgi": (scgi.SCGIServerProtocol, scgi.encode_request),
    "uwsgi": (uwsgi.UwsgiServerProtocol, uwsgi.encode_request),
}
HOP_BY_HOP = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
)
SIZE = struct.Struct("<H")


def budget(examples: int) -> settings:
    """``examples`` in CI; many more under ``HYPOTHESIS_PROFILE=fuzz``."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def chop(data: bytes, at: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in at)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def feed(
    server: OneShotServerProtocol, pieces: list[bytes], eof: bool = True
) -> tuple[list[Event], RemoteProtocolError | None]:
    events: list[Event] = []
    try:
        for piece in [*pieces, b""] if eof else pieces:
            events += server.receive_data(piece)
    except RemoteProtocolError as exc:
        return events, exc
    return events, None


def request_of(events: list[Event]) -> tuple[dict[str, str], bytes]:
    """The environ and body of a complete request's events."""
    assert isinstance(events[0], RequestReceived) and isinstance(events[-1], RequestComplete)
    assert all(isinstance(e, BodyReceived) and e.data for e in events[1:-1])
    return events[0].environ, b"".join(e.data for e in events if isinstance(e, BodyReceived))


def read_response(kind: str, data: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """What the front server reads."""
    if kind == "scgi":
        return parse_cgi_response(data)
    client = HTTPClientProtocol()
    client.send_request("GET", "/", [])
    events = client.receive_data(data) + client.receive_data(b"")  # ends at the close
    head = events[0]
    assert isinstance(head, Response)
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers]
    body = b"".join(e.data for e in events if isinstance(e, Data))
    return head.status, head.reason.decode("latin-1"), headers, body


latin1 = st.characters(max_codepoint=255)
#: Around uwsgi's one-byte and 16-bit sizes.
BOUNDARY_SIZES = [0, 1, 127, 128, 255, 256, 1000, 8000]
names = st.one_of(
    st.text(latin1, min_size=1, max_size=12),
    st.builds(lambda n, c: c * n, st.sampled_from(BOUNDARY_SIZES[1:6]), latin1),
).filter(lambda s: "\0" not in s and s not in ("CONTENT_LENGTH", "SCGI"))
values = st.one_of(
    st.text(latin1, max_size=12),
    st.builds(lambda n, c: c * n, st.sampled_from(BOUNDARY_SIZES), latin1),
).filter(lambda s: "\0" not in s)
environs = st.dictionaries(names, values, max_size=8).filter(
    lambda e: sum(len(k) + len(v) + 4 for k, v in e.items()) < 60_000
)
bodies = st.one_of(st.binary(max_size=200), st.sampled_from([0, 1, 65535, 65536]).map(bytes))
kinds = st.sampled_from(sorted(KINDS))


@budget(150)
@given(kinds, environs, bodies, st.lists(st.integers(min_value=0), max_size=12))
def test_round_trip_any_chunking(
    kind: str, environ: dict[str, str], body: bytes, at: list[int]
) -> None:
    make, encode = KINDS[kind]
    data = encode(environ, body)
    server = make()
    events, error = feed(server, chop(data, at))
    assert error is None, error
    got, got_body = request_of(events)
    assert got_body == body and got["CONTENT_LENGTH"] == str(len(body))
    assert {k: got[k] for k in environ} == environ
    extra = set(got) - set(environ)
    assert extra == ({"CONTENT_LENGTH", "SCGI"} if kind == "scgi" else {"CONTENT_LENGTH"})
    assert server.closing


@budget(100)
@given(kinds, environs, st.binary(max_size=50))
def test_every_prefix_is_cut_short(kind: str, environ: dict[str, str], body: bytes) -> None:
    make, encode = KINDS[kind]
    data = encode(environ, body)
    for cut in sorted({len(data) * k // 9 for k in range(1, 9)} | {1, len(data) - 1}):
        server = make()
        events, error = feed(server, [data[:cut]])
        assert error is not None and error.status == 400 and "cut short" in str(error)
        assert not any(isinstance(e, RequestComplete) for e in events)
    # Closed before a byte: a port probe, neither a request nor an error.
    assert feed(make(), []) == ([], None)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(kinds)
    environ = draw(
        st.dictionaries(
            names.filter(lambda s: len(s) < 50), st.text(latin1, max_size=8), max_size=4
        )
    )
    data = bytearray(KINDS[kind][1](environ, draw(st.binary(max_size=20))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "digits", "dup"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(data):
            data[at] = draw(st.sampled_from([0, 0x2C, 0x3A, 0x30, 0x39, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "digits":  # lengths and CONTENT_LENGTH values
            data[at:at] = draw(st.sampled_from([b"0", b"9", b"00000000", b"0" * 4400, b"9" * 25]))
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
    return kind, bytes(data)


@budget(250)
@given(mutated(), st.lists(st.integers(min_value=0), max_size=8))
def test_mutated_requests_give_events_or_remote_errors(
    case: tuple[str, bytes], at: list[int]
) -> None:
    kind, data = case
    make, _ = KINDS[kind]
    limits = Limits(max_header_bytes=20_000, max_header_count=6, max_body=30)
    whole, error = feed(make(limits), [data] if data else [])
    pieces, piece_error = feed(make(limits), chop(data, at))
    if error is None:
        assert piece_error is None
        assert request_of(whole) == request_of(pieces)
    else:
        assert piece_error is not None and piece_error.status == error.status
        assert error.status in (400, 413, 431)
        status, *_ = read_response(kind, make(limits).error_response(error))
        assert status == error.status


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    ("length", "expected"),
    [
        ("0" * 5000 + "3", None),  # leading zeros: still 3
        ("9" * 21, 413),  # past any body
        ("1" * 5000, 413),  # int() would raise ValueError past 4300 digits
        ("\xb2", 400),  # a digit to str.isdigit(), not ASCII
    ],
)
def test_content_length_digits(kind: str, length: str, expected: int | None) -> None:
    """Regression: a CONTENT_LENGTH of more than 4300 digits made int()
    raise ValueError out of receive_data (sys.get_int_max_str_digits)."""
    make, encode = KINDS[kind]
    data = encode({"X": "y"}, b"abc")
    data = data.replace(
        b"CONTENT_LENGTH\x003\x00", b"CONTENT_LENGTH\x00" + length.encode("latin-1") + b"\x00"
    )
    if kind == "scgi":
        block = data[data.index(b":") + 1 : data.rindex(b",")]
        data = str(len(block)).encode() + b":" + block + b",abc"
    else:
        fields = {"CONTENT_LENGTH": length, "X": "y"}
        block = b"".join(
            struct.pack("<H", len(k))
            + k.encode("latin-1")
            + struct.pack("<H", len(v))
            + v.encode("latin-1")
            for k, v in fields.items()
        )
        data = struct.pack("<BHB", 0, len(block), 0) + block + b"abc"
    events, error = feed(make(), [data])
    if expected is None:
        assert error is None and request_of(events)[1] == b"abc"
    else:
        assert error is not None and error.status == expected


# -- limits ---------------------------------------------------------------------------------
@budget(100)
@given(kinds, environs, st.lists(st.integers(min_value=0), max_size=8))
def test_header_bytes_limit_at_and_past(kind: str, environ: dict[str, str], at: list[int]) -> None:
    """The limit is on the netstring's length (SCGI) or the vars' datasize
    (uwsgi): at it accepted, one past 431, however fed."""
    make, encode = KINDS[kind]
    data = encode(environ, b"")
    # The netstring's length, or the datasize.
    size = int(data[: data.index(b":")]) if kind == "scgi" else SIZE.unpack_from(data, 1)[0]
    events, error = feed(make(Limits(max_header_bytes=size)), chop(data, at))
    assert error is None and isinstance(events[-1], RequestComplete)
    events, error = feed(make(Limits(max_header_bytes=size - 1)), chop(data, at))
    assert error is not None and error.status == 431
    assert not events


@budget(60)
@given(kinds, st.integers(2, 300))
def test_header_count_limit_at_and_past(kind: str, count: int) -> None:
    make, encode = KINDS[kind]
    fixed = 2 if kind == "scgi" else 1  # CONTENT_LENGTH (and SCGI)
    data = encode({f"V{i}": "x" for i in range(count - fixed)}, b"")
    events, error = feed(make(Limits(max_header_count=count)), [data])
    assert error is None and len(request_of(events)[0]) == count
    _, error = feed(make(Limits(max_header_count=count - 1)), [data])
    assert error is not None and error.status == 431


@budget(60)
@given(kinds, st.integers(1, 100_000), st.lists(st.integers(min_value=0), max_size=8))
def test_body_limit_at_and_past(kind: str, limit: int, at: list[int]) -> None:
    """Refused from CONTENT_LENGTH alone, before any body byte is read."""
    make, encode = KINDS[kind]
    events, error = feed(make(Limits(max_body=limit)), chop(encode({}, b"b" * limit), at))
    assert error is None and request_of(events)[1] == b"b" * limit
    data = encode({}, b"b" * (limit + 1))
    events, error = feed(make(Limits(max_body=limit)), [data[: len(data) - limit - 1]])
    assert error is not None and error.status == 413 and not events


# -- responses ----------------------------------------------------------------------------------
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True).filter(
    lambda n: n.lower() not in ("status", "content-length", "transfer-encoding")
)
header_values = st.from_regex(
    r"[!-~\xa0-\xff]([ -~\xa0-\xff]{0,30}[!-~\xa0-\xff])?", fullmatch=True
)
headers_strategy = st.lists(
    st.tuples(
        st.one_of(header_names, st.sampled_from(sorted(HOP_BY_HOP - {"transfer-encoding"}))),
        header_values,
    ),
    max_size=8,
)
statuses = st.sampled_from(["200 OK", "404 Not Found", "201 Created", "299 Whatever It Is"])


@budget(100)
@given(
    kinds,
    statuses,
    headers_strategy,
    st.binary(max_size=100),
    st.lists(st.binary(min_size=1, max_size=1000), max_size=4),
    st.booleans(),
)
def test_responses_round_trip(
    kind: str,
    status: str,
    headers: list[tuple[str, str]],
    first: bytes,
    chunks: list[bytes],
    end: bool,
) -> None:
    make, encode = KINDS[kind]
    server = make()
    feed(server, [encode({}, b"")], eof=False)
    end = end and not chunks
    out = server.start_response(1, status, headers, first, end)
    if not end:
        out += b"".join(server.send_body(1, chunk) for chunk in chunks) + server.end_response(1)
    code, reason, got, body = read_response(kind, out)
    assert (f"{code} {reason}", body) == (status, first + b"".join(chunks))
    assert got == [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
    assert server.closing


@budget(60)
@given(kinds, statuses, headers_strategy, st.binary(max_size=100))
def test_reject_round_trips(
    kind: str, status: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    make, encode = KINDS[kind]
    server = make()
    feed(server, [encode({}, b"")], eof=False)
    code, reason, got, got_body = read_response(kind, server.reject(1, status, headers, body))
    assert (f"{code} {reason}", got_body) == (status, body)
    sent = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
    assert got == [*sent, ("Content-Length", str(len(body)))]
