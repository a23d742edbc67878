"""FastCGI 1.0 server and client state machines, without sockets.

Parser inputs go in three ways (whole, byte by byte, and followed by the start
of the next record), a corpus of capture-like streams from lighttpd, nginx and
Apache sits in ``corpus/fastcgi`` beside its expected events, and the client
and server round-trip each other under hypothesis.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dumbwaiter.protocols import (
    BodyReceived,
    Event,
    FilterDataReceived,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    RequestAborted,
    RequestComplete,
    RequestReceived,
    Role,
)
from dumbwaiter.protocols.fastcgi import FastCGIServerProtocol
from dumbwaiter.protocols.fastcgi_client import (
    ClientEvent,
    EndRequest,
    FastCGIClientProtocol,
    GetValuesResult,
    Stderr,
    Stdout,
    UnknownType,
    parse_cgi_response,
)
from dumbwaiter.protocols.fastcgi_records import decode_pairs, encode_pairs
from dumbwaiter.protocols.fastcgi_states import TRANSITIONS
from sans_io import merge

CORPUS = Path(__file__).parent / "corpus" / "fastcgi"
HEADER = struct.Struct(">BBHHBx")
PARAMS = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "QUERY_STRING": "a=1"}
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


def rec(kind: int, rid: int, content: bytes = b"", padding: int = 0) -> bytes:
    return HEADER.pack(1, kind, rid, len(content), padding) + content + b"\0" * padding


def begin(rid: int = 1, role: int = 1, flags: int = 0) -> bytes:
    return rec(1, rid, struct.pack(">HB5x", role, flags))


def end_request(rid: int, protocol_status: int = 0, app_status: int = 0) -> bytes:
    return rec(3, rid, struct.pack(">IB3x", app_status, protocol_status))


def request_bytes(
    params: dict[str, str] = PARAMS,
    body: bytes = b"",
    *,
    role: Role = Role.RESPONDER,
    keep_conn: bool = False,
    client: FastCGIClientProtocol | None = None,
    data: bytes | None = None,
    stdin: bool = True,
) -> tuple[int, bytes]:
    """One whole request as a web server sends it; ``data`` for a FILTER."""
    client = client or FastCGIClientProtocol()
    rid = client.begin_request(role, keep_conn=keep_conn)
    out = [client.send_begin(rid)]
    if params:  # an empty PARAMS record would already end the stream
        out.append(client.send_params(rid, params))
    out.append(client.send_params(rid, {}))
    if stdin:
        if body:
            out.append(client.send_stdin(rid, body))
        out.append(client.send_stdin(rid, b""))
    if data is not None:
        if data:
            out.append(client.send_data(rid, data))
        out.append(client.send_data(rid, b""))
    return rid, b"".join(out)


NEXT_RECORD = begin(99)[:5]  # the start of a record that is not whole yet


Make = Callable[[], FastCGIServerProtocol]


def feed3(
    data: bytes, make: Make = FastCGIServerProtocol
) -> tuple[list[Event], bytes, FastCGIServerProtocol]:
    """Feed ``data`` whole, byte by byte, and followed by part of a next
    record; all three must agree.  Returns the merged events, the replies
    and the server fed whole."""
    whole = make()
    events = merge(whole.receive_data(data))
    replies = whole.data_to_send()
    bytewise = make()
    pieces: list[Event] = []
    for i in range(len(data)):
        pieces += bytewise.receive_data(data[i : i + 1])
    assert merge(pieces) == events
    assert bytewise.data_to_send() == replies
    trailing = make()
    assert merge(trailing.receive_data(data + NEXT_RECORD)) == events
    assert trailing.data_to_send() == replies
    assert not trailing.idle  # a record is half received
    return events, replies, whole


def feed3_raises(data: bytes, make: Make = FastCGIServerProtocol) -> RemoteProtocolError:
    """All three feedings of ``data`` raise the same RemoteProtocolError."""
    errors = []
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))], [data + NEXT_RECORD]):
        server = make()
        with pytest.raises(RemoteProtocolError) as info:
            for chunk in chunks:
                server.receive_data(chunk)
        assert server.closing
        assert server.error_response(info.value) == b""
        with pytest.raises(LocalProtocolError):
            server.receive_data(b"more")
        errors.append(info.value)
    assert len({(str(e), e.status) for e in errors}) == 1
    return errors[0]


def client_events(data: bytes) -> list[ClientEvent]:
    return FastCGIClientProtocol().receive_data(data)


def stdout_of(events: list[ClientEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Stdout))


# -- requests -----------------------------------------------------------------


def test_responder_request() -> None:
    rid, data = request_bytes(body=b"hello body")
    events, replies, server = feed3(data)
    assert events == [
        RequestReceived(rid, PARAMS, Role.RESPONDER),
        BodyReceived(rid, b"hello body"),
        RequestComplete(rid),
    ]
    assert replies == b"" and not server.closing and not server.idle
    out = server.start_response(rid, "200 OK", [("Content-Type", "text/plain")], b"hi", end=True)
    assert client_events(out)[-1] == EndRequest(rid, 0, 0)
    assert server.closing and server.idle  # no FCGI_KEEP_CONN


@pytest.mark.parametrize("name", sorted(p.stem for p in CORPUS.glob("*.bin")))
def test_corpus(name: str) -> None:
    data = (CORPUS / f"{name}.bin").read_bytes()
    expected = json.loads((CORPUS / f"{name}.json").read_text())
    events, replies, server = feed3(data)
    assert replies == b""
    want: list[Any] = []
    for kind, rid, *rest in expected["events"]:
        if kind == "RequestReceived":
            assert events[len(want)] == RequestReceived(rid, rest[0], Role(rest[1]))
        elif kind == "BodyReceived":
            event = events[len(want)]
            assert isinstance(event, BodyReceived) and event.stream_id == rid
            assert len(event.data) == rest[0]["size"]
            assert hashlib.sha256(event.data).hexdigest() == rest[0]["sha256"]
        else:
            assert events[len(want)] == RequestComplete(rid)
        want.append(kind)
    assert len(events) == len(want)
    # Answer it; with FCGI_KEEP_CONN the same bytes may come again (nginx
    # uses request id 1 for every request on a connection).
    out = server.start_response(1, "200 OK", [("Variable-User", "alice")], b"", end=True)
    head = b"Status: 200 OK\r\nVariable-User: alice\r\n\r\n"
    assert client_events(out) == [Stdout(1, head), EndRequest(1, 0, 0)]
    assert server.closing is not expected["keep_conn"]
    if expected["keep_conn"]:
        assert merge(server.receive_data(data)) == events


def test_keep_conn_serves_requests_in_turn() -> None:
    client = FastCGIClientProtocol()
    server = FastCGIServerProtocol()
    for _ in range(3):
        rid, data = request_bytes(client=client, keep_conn=True)
        assert server.receive_data(data) == [RequestReceived(rid, PARAMS), RequestComplete(rid)]
        server.start_response(rid, "200 OK", [], b"x", end=True)
        assert not server.closing and server.idle


def test_padding_and_pairs_straddling_records() -> None:
    pairs = encode_pairs([(b"A" * 200, b"v" * 300), (b"B", b""), (b"C" * 127, b"w" * 128)])
    records = b"".join(rec(4, 1, pairs[i : i + 7], i % 9) for i in range(0, len(pairs), 7))
    data = rec(1, 1, struct.pack(">HB5x", 1, 1), 5) + records + rec(4, 1, b"", 3)
    events, _, _ = feed3(data + rec(5, 1, b"body", 4) + rec(5, 1, b"", 255))
    assert events == [
        RequestReceived(1, {"A" * 200: "v" * 300, "B": "", "C" * 127: "w" * 128}),
        BodyReceived(1, b"body"),
        RequestComplete(1),
    ]


def test_params_are_latin1_and_duplicates_last_win() -> None:
    data = encode_pairs(
        [(b"SCRIPT_NAME", b"/a"), (b"PATH_INFO", b"/\xe9t\xe9"), (b"SCRIPT_NAME", b"")]
    )
    assert decode_pairs(data) == {"SCRIPT_NAME": "", "PATH_INFO": "/\xe9t\xe9"}


def test_four_byte_lengths_round_trip() -> None:
    pairs = [(b"N" * 127, b"x"), (b"M" * 128, b"y" * 70000), (b"", b"")]
    encoded = encode_pairs(pairs)
    assert encoded[:2] == b"\x7f\x01" and encoded[130:134] == b"\x80\x00\x00\x80"
    assert decode_pairs(encoded) == {"N" * 127: "x", "M" * 128: "y" * 70000, "": ""}


def test_get_values_answer_exactly() -> None:
    ask = encode_pairs([(b"FCGI_MPXS_CONNS", b""), (b"OTHER", b""), (b"FCGI_MAX_CONNS", b"")])
    ask += encode_pairs([(b"FCGI_MAX_REQS", b"")])
    events, replies, _ = feed3(rec(9, 0, ask, 3), lambda: FastCGIServerProtocol(max_conns=7))
    answer = encode_pairs(
        [(b"FCGI_MPXS_CONNS", b"1"), (b"FCGI_MAX_CONNS", b"7"), (b"FCGI_MAX_REQS", b"1000")]
    )
    assert events == [] and replies == rec(10, 0, answer)
    server = FastCGIServerProtocol(max_reqs=3, multiplex=False)
    client = FastCGIClientProtocol()
    server.receive_data(client.send_get_values(["FCGI_MPXS_CONNS", "FCGI_MAX_REQS"]))
    assert client.receive_data(server.data_to_send()) == [
        GetValuesResult({"FCGI_MPXS_CONNS": "0", "FCGI_MAX_REQS": "3"})
    ]
    assert server.data_to_send() == b"" and server.idle


@pytest.mark.parametrize("kind", [1, 5, 12, 42, 255])
def test_unknown_management_type(kind: int) -> None:
    _, replies, server = feed3(rec(kind, 0, b"abc", 5))
    assert replies == rec(11, 0, bytes([kind]) + b"\0" * 7)
    assert client_events(replies) == [UnknownType(kind)]
    assert not server.closing


def test_unknown_and_refused_roles() -> None:
    only_responders = lambda: FastCGIServerProtocol(roles=frozenset({Role.RESPONDER}))  # noqa: E731
    data = begin(3, role=9, flags=1) + begin(4, role=3, flags=1) + rec(5, 3, b"x") + rec(4, 4)
    events, replies, server = feed3(data, only_responders)
    assert events == []
    assert replies == end_request(3, 3) + end_request(4, 3)  # FCGI_UNKNOWN_ROLE
    assert not server.closing and server.idle
    events, replies, server = feed3(begin(5, role=0))
    assert replies == end_request(5, 3) and server.closing  # no FCGI_KEEP_CONN


def test_cant_mpx_conn_when_not_multiplexing() -> None:
    client = FastCGIClientProtocol()
    first, one = request_bytes(client=client, keep_conn=True)
    second, two = request_bytes(client=client, keep_conn=True)
    events, replies, server = feed3(one + two, lambda: FastCGIServerProtocol(multiplex=False))
    assert events == [RequestReceived(first, PARAMS), RequestComplete(first)]
    assert replies == end_request(second, 1)  # FCGI_CANT_MPX_CONN
    assert not server.closing


def test_multiplexed_interleaving_and_stream_limit() -> None:
    params = {"N": "n" * 300, "M": "m"}
    block = encode_pairs([(b"N", b"n" * 300), (b"M", b"m")])
    data = begin(1, flags=1) + begin(2, flags=1) + begin(3, flags=1)
    # Request 1's first pair straddles two records with request 2's between.
    data += rec(4, 1, block[:100]) + rec(4, 2, block) + rec(4, 1, block[100:])
    data += rec(4, 2) + rec(4, 1) + rec(5, 1, b"1") + rec(5, 2, b"2")
    data += rec(4, 3, block)  # the refused request's: inactive, ignored
    data += rec(5, 2) + rec(5, 1) + rec(5, 3)
    events, replies, server = feed3(data, lambda: FastCGIServerProtocol(Limits(max_streams=2)))
    assert events == [
        RequestReceived(2, params),
        RequestReceived(1, params),
        BodyReceived(1, b"1"),
        BodyReceived(2, b"2"),
        RequestComplete(2),
        RequestComplete(1),
    ]
    assert replies == end_request(3, 2)  # FCGI_OVERLOADED, not a connection error
    out = server.start_response(2, "200 OK", [], b"two")
    out += server.start_response(1, "204 No Content", [], end=True) + server.end_response(2)
    assert [e for e in client_events(out) if isinstance(e, EndRequest)] == [
        EndRequest(1, 0, 0),
        EndRequest(2, 0, 0),
    ]
    assert not server.closing and server.idle


def test_authorizer_with_and_without_stdin() -> None:
    params = {"FCGI_ROLE": "AUTHORIZER", "REMOTE_USER": "alice"}
    expected = [RequestReceived(1, params, Role.AUTHORIZER), RequestComplete(1)]
    head = begin(1, role=2, flags=1) + rec(4, 1, encode_pairs([(b"FCGI_ROLE", b"AUTHORIZER")]))
    head += rec(4, 1, encode_pairs([(b"REMOTE_USER", b"alice")])) + rec(4, 1)
    for stdin in [b"", rec(5, 1), rec(5, 1, b"ignored") + rec(5, 1) + rec(5, 1, b"again")]:
        events, _, server = feed3(head + stdin)
        assert events == expected  # complete at the end of PARAMS; STDIN dropped
    out = server.start_response(1, "200 OK", [("Variable-User", "alice")], end=True)
    assert stdout_of(client_events(out)) == b"Status: 200 OK\r\nVariable-User: alice\r\n\r\n"
    assert server.receive_data(rec(5, 1, b"late") + rec(5, 1)) == []  # inactive id now
    assert server.idle and not server.closing


def test_filter_gets_stdin_and_data_in_either_order() -> None:
    params = {"FCGI_DATA_LENGTH": "4"}
    rid, data = request_bytes(params, b"in", role=Role.FILTER, data=b"file")
    events, _, _ = feed3(data)
    assert events == [
        RequestReceived(rid, params, Role.FILTER),
        BodyReceived(rid, b"in"),
        FilterDataReceived(rid, b"file"),
        RequestComplete(rid),
    ]
    head = begin(role=3) + rec(4, 1) + rec(8, 1, b"fi") + rec(5, 1, b"i") + rec(8, 1, b"le")
    events, _, _ = feed3(head + rec(8, 1) + rec(5, 1, b"n") + rec(5, 1))
    assert events == [
        RequestReceived(1, {}, Role.FILTER),
        FilterDataReceived(1, b"fi"),
        BodyReceived(1, b"i"),
        FilterDataReceived(1, b"le"),
        BodyReceived(1, b"n"),
        RequestComplete(1),
    ]


def test_abort_in_every_phase() -> None:
    head = begin(1, flags=1) + rec(4, 1, encode_pairs([(b"A", b"b")]))
    # Before the environ went out: answered here, nobody else hears of it.
    events, replies, server = feed3(head + rec(2, 1) + rec(4, 1) + rec(5, 1))
    assert events == [] and replies == end_request(1) and server.idle and not server.closing
    # While the body streams: the rest of the input is dropped.
    events, replies, server = feed3(
        head + rec(4, 1) + rec(5, 1, b"x") + rec(2, 1) + rec(5, 1, b"late") + rec(5, 1) + rec(2, 1)
    )
    assert events == [RequestReceived(1, {"A": "b"}), BodyReceived(1, b"x"), RequestAborted(1)]
    assert replies == b"" and not server.idle
    assert server.end_response(1) == end_request(1)  # no STDOUT ever opened
    assert server.idle and server.receive_data(rec(2, 1)) == []  # inactive now
    # After the response began: the STDOUT stream is closed too.
    server = FastCGIServerProtocol()
    server.receive_data(head + rec(4, 1) + rec(5, 1))
    server.start_response(1, "200 OK", [])
    assert server.receive_data(rec(2, 1)) == [RequestAborted(1)]
    assert server.end_response(1) == rec(6, 1) + end_request(1)


def test_records_for_inactive_ids_are_ignored() -> None:
    noise = rec(5, 7, b"x") + rec(8, 7, b"y") + rec(4, 7, b"\x01\x01ab") + rec(2, 7) + rec(42, 7)
    noise += rec(6, 7, b"out") + rec(3, 7, b"\0" * 8) + rec(4, 8) + rec(5, 8)
    events, replies, server = feed3(noise)
    assert events == [] and replies == b"" and server.idle and not server.closing


def test_eof_and_idle() -> None:
    server = FastCGIServerProtocol()
    assert server.idle and not server.closing
    server.receive_data(begin()[:3])
    assert not server.idle
    server.receive_data(begin()[3:] + rec(4, 1, b"\x01"))
    assert not server.idle
    assert server.receive_data(b"") == [] and server.closing  # mid-request EOF is fine


# -- limits and errors ----------------------------------------------------------


def test_limits_at_and_one_past() -> None:
    def server(**limits: int) -> Make:
        return lambda: FastCGIServerProtocol(Limits(**limits))

    size = len(encode_pairs([(b"X", b"v" * 200)]))
    data = request_bytes({"X": "v" * 200})[1]
    assert feed3(data, server(max_header_bytes=size))[0][0] == RequestReceived(1, {"X": "v" * 200})
    assert feed3_raises(data, server(max_header_bytes=size - 1)).status == 431
    many = request_bytes({f"K{i}": "" for i in range(5)})[1]
    assert len(feed3(many, server(max_header_count=5))[0]) == 2
    assert feed3_raises(many, server(max_header_count=4)).status == 431
    body = request_bytes(body=b"x" * 10)[1]
    assert feed3(body, server(max_body=10))[0][1] == BodyReceived(1, b"x" * 10)
    assert feed3_raises(request_bytes(body=b"x" * 11)[1], server(max_body=10)).status == 413
    both = request_bytes({}, b"x" * 6, role=Role.FILTER, data=b"y" * 5)[1]
    assert feed3_raises(both, server(max_body=10)).status == 413  # STDIN + DATA together


@pytest.mark.parametrize(
    "data",
    [
        HEADER.pack(2, 1, 1, 8, 0) + b"\0" * 8,
        begin() + HEADER.pack(0, 4, 1, 0, 0),
        b"GET / HTTP/1.1\r\n\r\n",
        rec(1, 1, b"\0\1"),
        request_bytes()[1] + begin(),
        begin() + rec(5, 1, b"x"),
        begin() + rec(4, 1, b"\x05ab") + rec(4, 1),
        begin() + rec(4, 1, b"\x80\x00") + rec(4, 1),
        begin() + rec(4, 1) + rec(5, 1) + rec(5, 1, b"again"),
        begin() + rec(4, 1) + rec(8, 1, b"data for a responder"),
        begin() + rec(6, 1, b"stdout from the web server"),
        begin() + rec(4, 1) + rec(3, 1, b"\0" * 8),
        begin() + rec(2, 1, b"abort with content"),
        begin() + rec(9, 1),
        rec(9, 0, b"\x05"),
    ],
    ids=[
        "version-2",
        "version-0-later",
        "http",
        "short-begin",
        "begin-for-active-id",
        "stdin-before-params-end",
        "pair-past-its-end",
        "cut-four-byte-length",
        "second-stdin-stream",
        "data-for-responder",
        "stdout-in",
        "end-request-in",
        "abort-with-content",
        "get-values-with-request-id",
        "bad-get-values",
    ],
)
def test_protocol_errors(data: bytes) -> None:
    assert feed3_raises(data).status == 400


# -- responses --------------------------------------------------------------------


def started(rid: int = 1, keep_conn: bool = False) -> FastCGIServerProtocol:
    server = FastCGIServerProtocol()
    server.receive_data(begin(rid, flags=int(keep_conn)) + rec(4, rid) + rec(5, rid))
    return server


def test_one_bytes_object_for_a_small_response() -> None:
    server = started(5)
    headers = [("Content-Type", "text/plain"), ("Connection", "close"), ("Transfer-Encoding", "x")]
    headers += [("Keep-Alive", "1"), ("TE", "x"), ("Trailer", "x"), ("Upgrade", "h2")]
    headers += [("Proxy-Connection", "x"), ("Variable-X", "kept")]
    out = server.start_response(5, "200 OK", headers, b"hello", end=True)
    head = b"Status: 200 OK\r\nContent-Type: text/plain\r\nVariable-X: kept\r\n\r\n"
    assert out == rec(6, 5, head + b"hello") + rec(6, 5) + end_request(5)
    assert server.closing


@pytest.mark.parametrize("size", [65535, 65536, 3 * 65535 + 1])
def test_output_records_split_at_65535(size: int) -> None:
    server = started(keep_conn=True)
    head = server.start_response(1, "200 OK", [])
    assert head == rec(6, 1, b"Status: 200 OK\r\n\r\n")
    body = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    out = server.send_body(1, body)
    lengths = []
    position = 0
    while position < len(out):
        _, kind, rid, length, padding = HEADER.unpack_from(out, position)
        assert (kind, rid, padding) == (6, 1, 0)  # no padding on output
        lengths.append(length)
        position += 8 + length
    assert lengths == [65535] * (size // 65535) + ([size % 65535] if size % 65535 else [])
    assert stdout_of(client_events(out)) == body
    big = started()
    whole = big.start_response(1, "200 OK", [], body, end=True)
    assert stdout_of(client_events(whole)) == b"Status: 200 OK\r\n\r\n" + body
    assert whole.endswith(rec(6, 1) + end_request(1))


def test_reject() -> None:
    server = started(keep_conn=True)
    out = server.reject(1, "503 Service Unavailable", [("Retry-After", "1")], b"busy")
    events = client_events(out)
    assert events[-1] == EndRequest(1, 0, 2)  # FCGI_OVERLOADED, after the 503 itself
    assert parse_cgi_response(stdout_of(events)) == (
        503,
        "Service Unavailable",
        [("Retry-After", "1"), ("Content-Length", "4")],
        b"busy",
    )
    assert not server.closing and server.idle
    server = started()
    out = server.reject(1, "413 Content Too Large", [("Content-Length", "2")], b"no")
    events = client_events(out)
    assert events[-1] == EndRequest(1, 0, 0)
    assert parse_cgi_response(stdout_of(events))[2] == [("Content-Length", "2")]
    assert server.closing


def test_abort_response_closes_without_end_request() -> None:
    server = FastCGIServerProtocol()
    server.receive_data(begin(1, flags=1) + rec(4, 1) + rec(5, 1) + begin(2, flags=1) + rec(4, 2))
    server.start_response(1, "200 OK", [], b"part")
    assert server.abort_response(1) == b""
    assert server.closing  # and request 2 goes down with the connection
    with pytest.raises(LocalProtocolError):
        server.send_body(1, b"more")


def test_local_misuse() -> None:
    server = started(keep_conn=True)
    with pytest.raises(LocalProtocolError):
        server.send_body(1, b"before the head")
    with pytest.raises(LocalProtocolError):
        server.end_response(1)  # nothing started, nothing aborted
    server.start_response(1, "200 OK", [])
    assert server.send_body(1, b"") == b""
    with pytest.raises(LocalProtocolError):
        server.start_response(1, "200 OK", [])
    server.end_response(1)
    with pytest.raises(LocalProtocolError):
        server.end_response(1)
    with pytest.raises(LocalProtocolError):
        server.start_response(2, "200 OK", [])


# -- the client ---------------------------------------------------------------------


def test_client_events_and_errors() -> None:
    client = FastCGIClientProtocol()
    rid = client.begin_request(Role.AUTHORIZER)
    assert client.send_begin(rid) == begin(1, role=2)
    assert client.outstanding == [1]
    data = rec(7, 1, b"err") + rec(6, 1, b"out", 5) + rec(6, 1) + end_request(1, 0, 3)
    assert client.receive_data(data[:10]) == []
    assert client.receive_data(data[10:]) == [
        Stderr(1, b"err"),
        Stdout(1, b"out"),
        EndRequest(1, 3, 0),
    ]
    assert client.outstanding == [] and client.receive_data(b"") == []
    for bad in [rec(3, 1, b"\0" * 4), rec(5, 1, b"x"), rec(11, 0), rec(10, 1), b"\2" + b"\0" * 7]:
        with pytest.raises(RemoteProtocolError):
            FastCGIClientProtocol().receive_data(bad)
    padded = FastCGIClientProtocol(pad=True)
    assert padded.send_abort(padded.begin_request()) == rec(2, 1)
    assert len(padded.send_stdin(1, b"abc")) == 16


def test_client_params_forms() -> None:
    client = FastCGIClientProtocol()
    rid = client.begin_request()
    as_dict = client.send_params(rid, {"A": "\xe9"})
    assert as_dict == client.send_params(rid, [(b"A", b"\xe9")])
    assert as_dict == client.send_params(rid, [("A", b"\xe9")]) == rec(4, 1, b"\x01\x01A\xe9")
    assert client.send_params(rid, {}) == rec(4, 1)
    big = client.send_params(rid, {"V": "x" * 70000})
    assert HEADER.unpack_from(big)[3] == 65535


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"Status: 404 Not Found\r\nA: b\r\n\r\nbody", (404, "Not Found", [("A", "b")], b"body")),
        (b"A: b\n\nbody\r\n\r\n", (200, "OK", [("A", "b")], b"body\r\n\r\n")),
        (b"Location: http://x/\r\n\r\n", (302, "Found", [("Location", "http://x/")], b"")),
        (b"Status: 204\r\n\r\n", (204, "", [], b"")),
    ],
)
def test_parse_cgi_response(data: bytes, expected: Any) -> None:
    assert parse_cgi_response(data) == expected


@pytest.mark.parametrize(
    "data", [b"Status: 200 OK\r\n", b"Status: abc\r\n\r\n", b"Status: \xb2\xb2\xb2\r\n\r\n"]
)
def test_parse_cgi_response_errors(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_cgi_response(data)


def test_transition_table_shape() -> None:
    states = {state for state, _ in TRANSITIONS} | set(TRANSITIONS.values())
    # Every state but the one that forgets the request can be aborted.
    assert {s for s in states if (s, -2) not in TRANSITIONS} == {"forgotten"}


# -- properties ------------------------------------------------------------------------

latin1 = st.text(st.characters(max_codepoint=255), max_size=200)
cuts = st.lists(st.integers(min_value=0, max_value=200_000), max_size=10)


def chopped(data: bytes, at: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c for c in at if c < len(data))})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(
    params=st.dictionaries(latin1, latin1, max_size=20),
    body=st.binary(max_size=140_000),
    at=cuts,
    role=st.sampled_from(list(Role)),
    pad=st.booleans(),
)
def test_client_to_server_round_trip(
    params: dict[str, str], body: bytes, at: list[int], role: Role, pad: bool
) -> None:
    client = FastCGIClientProtocol(pad=pad)
    data_stream = body[::-1] if role is Role.FILTER else None
    rid, data = request_bytes(
        params,
        body if role is not Role.AUTHORIZER else b"",
        role=role,
        data=data_stream,
        client=client,
        stdin=role is not Role.AUTHORIZER or bool(body),
    )
    server = FastCGIServerProtocol(Limits(max_header_bytes=1 << 20, max_header_count=100))
    events: list[Event] = []
    for piece in chopped(data, at):
        events += server.receive_data(piece)
    expected: list[Event] = [RequestReceived(rid, params, role)]
    if body and role is not Role.AUTHORIZER:
        expected.append(BodyReceived(rid, body))
    if data_stream:
        expected.append(FilterDataReceived(rid, data_stream))
    expected.append(RequestComplete(rid))
    assert merge(events) == expected
    assert server.data_to_send() == b""


header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True).filter(
    lambda name: name.lower() != "status"
)
header_values = st.from_regex(r"[!-~]([ -~]{0,40}[!-~])?", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(
    headers=st.lists(st.tuples(header_names, header_values), max_size=8),
    chunks=st.lists(st.binary(min_size=1, max_size=70_000), max_size=4),
    first=st.binary(max_size=70_000),
    end=st.booleans(),
    at=cuts,
)
def test_server_to_client_round_trip(
    headers: list[tuple[str, str]], chunks: list[bytes], first: bytes, end: bool, at: list[int]
) -> None:
    server = started(9, keep_conn=True)
    out = server.start_response(9, "201 Created", headers, first, end=end and not chunks)
    if not (end and not chunks):
        out += b"".join(server.send_body(9, chunk) for chunk in chunks)
        out += server.end_response(9)
    client = FastCGIClientProtocol()
    events: list[ClientEvent] = []
    for piece in chopped(out, at):
        events += client.receive_data(piece)
    assert events[-1] == EndRequest(9, 0, 0)
    assert all(isinstance(e, Stdout) for e in events[:-1])
    status, reason, got, body = parse_cgi_response(stdout_of(events))
    assert (status, reason) == (201, "Created")
    assert got == [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
    assert body == first + b"".join(chunks)
    assert server.idle and not server.closing


def check_event_order(events: list[Event]) -> None:
    """Per stream: RequestReceived, input*, then RequestComplete and/or
    RequestAborted, as events.py promises."""
    phase: dict[int, str] = {}
    for event in events:
        now = phase.get(event.stream_id)
        if isinstance(event, RequestReceived):
            assert now in (None, "done")
            phase[event.stream_id] = "input"
        elif isinstance(event, BodyReceived | FilterDataReceived):
            assert now == "input"
        elif isinstance(event, RequestComplete):
            assert now == "input"
            phase[event.stream_id] = "complete"
        else:
            assert now in ("input", "complete")
            phase[event.stream_id] = "done"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_give_events_or_remote_errors_only(data: bytes) -> None:
    server = FastCGIServerProtocol(Limits(max_header_bytes=256, max_body=256))
    try:
        check_event_order(server.receive_data(data))
        server.receive_data(b"")
    except RemoteProtocolError:
        pass
    server.data_to_send()


records = st.lists(
    st.builds(
        lambda kind, rid, content, padding: rec(kind, rid, content, padding),
        st.integers(min_value=0, max_value=13),
        st.integers(min_value=0, max_value=3),
        st.one_of(
            st.just(b""),
            st.sampled_from([struct.pack(">HB5x", r, f) for r in range(5) for f in (0, 1)]),
            st.binary(max_size=40),
        ),
        st.integers(min_value=0, max_value=9),
    ),
    max_size=30,
)


@settings(max_examples=500, deadline=None)
@given(records, st.booleans(), st.integers(min_value=1, max_value=3))
def test_random_records_give_events_or_remote_errors_only(
    stream: list[bytes], multiplex: bool, max_streams: int
) -> None:
    server = FastCGIServerProtocol(
        Limits(max_header_bytes=64, max_header_count=4, max_body=64, max_streams=max_streams),
        multiplex=multiplex,
    )
    events: list[Event] = []
    try:
        for piece in stream:
            events += server.receive_data(piece)
    except RemoteProtocolError:
        return
    check_event_order(events)
    replies = client_events(server.data_to_send())
    assert all(isinstance(e, EndRequest | GetValuesResult | UnknownType) for e in replies)
    # Every request the events announced as complete or aborted can be answered.
    owed: dict[int, type] = {}
    for event in events:
        if isinstance(event, RequestComplete | RequestAborted):
            owed[event.stream_id] = type(event)
    for stream_id, kind in owed.items():
        if kind is RequestAborted:
            server.end_response(stream_id)
        else:
            server.start_response(stream_id, "200 OK", [], b"ok", end=True)


@settings(max_examples=200, deadline=None)
@given(records)
def test_client_random_records_give_events_or_remote_errors_only(stream: list[bytes]) -> None:
    client = FastCGIClientProtocol()
    try:
        for piece in stream:
            client.receive_data(piece)
    except RemoteProtocolError:
        pass
