"""FastCGI 1.0 server and client state machines, without sockets.

Inputs are fed three ways (whole, byte by byte, with the next request's bytes
appended) and the client and server round-trip each other under hypothesis.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

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
from dumbwaiter.protocols.fastcgi import (
    FastCGIServerProtocol,
    decode_pairs,
    encode_pairs,
)
from dumbwaiter.protocols.fastcgi_client import (
    EndRequest,
    FastCGIClientProtocol,
    GetValuesResult,
    Stderr,
    Stdout,
    UnknownType,
    parse_cgi_response,
)

HEADER = struct.Struct(">BBHHBx")
PARAMS = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "QUERY_STRING": "a=1"}


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


def merge(events: list[Event]) -> list[Event]:
    """Join consecutive body pieces so different feedings compare equal."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            isinstance(event, BodyReceived | FilterDataReceived)
            and type(last) is type(event)
            and last.stream_id == event.stream_id
        ):  # type: ignore[union-attr]
            merged[-1] = type(event)(event.stream_id, last.data + event.data)  # type: ignore[union-attr]
        else:
            merged.append(event)
    return merged


def whole(server: FastCGIServerProtocol, data: bytes) -> list[Event]:
    return server.receive_data(data)


def byte_by_byte(server: FastCGIServerProtocol, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        events += server.receive_data(data[i : i + 1])
    return events


FEEDS: list[Callable[[FastCGIServerProtocol, bytes], list[Event]]] = [whole, byte_by_byte]


@pytest.mark.parametrize("feed", FEEDS, ids=["whole", "bytewise"])
def test_responder_request(feed: Callable[[FastCGIServerProtocol, bytes], list[Event]]) -> None:
    server = FastCGIServerProtocol()
    rid, data = request_bytes(body=b"hello body")
    assert merge(feed(server, data)) == [
        RequestReceived(rid, PARAMS, Role.RESPONDER),
        BodyReceived(rid, b"hello body"),
        RequestComplete(rid),
    ]
    assert not server.closing


def test_with_trailing_bytes_of_the_next_request() -> None:
    server = FastCGIServerProtocol()
    client = FastCGIClientProtocol()
    first, one = request_bytes(client=client, keep_conn=True)
    second, two = request_bytes(client=client, keep_conn=True)
    events = server.receive_data(one + two[:13])
    assert events == [RequestReceived(first, PARAMS), RequestComplete(first)]
    assert server.receive_data(two[13:]) == [
        RequestReceived(second, PARAMS),
        RequestComplete(second),
    ]


def test_lighttpd_capture_shape() -> None:
    """lighttpd: id 1, flags 0, all params in one record, then empty PARAMS
    and an empty STDIN, in one write."""
    params = encode_pairs(
        [(b"SCRIPT_NAME", b""), (b"PATH_INFO", b"/hello"), (b"REQUEST_METHOD", b"GET")]
    )
    data = (
        HEADER.pack(1, 1, 1, 8, 0)
        + struct.pack(">HB5x", 1, 0)
        + HEADER.pack(1, 4, 1, len(params), 0)
        + params
        + HEADER.pack(1, 4, 1, 0, 0)
        + HEADER.pack(1, 5, 1, 0, 0)
    )
    server = FastCGIServerProtocol()
    assert server.receive_data(data) == [
        RequestReceived(1, {"SCRIPT_NAME": "", "PATH_INFO": "/hello", "REQUEST_METHOD": "GET"}),
        RequestComplete(1),
    ]
    out = server.start_response(1, "200 OK", [("Content-Type", "text/plain")], b"hi", end=True)
    client = FastCGIClientProtocol()
    events = client.receive_data(out)
    assert events[-1] == EndRequest(1, 0, 0)
    assert parse_cgi_response(b"".join(e.data for e in events if isinstance(e, Stdout))) == (
        200,
        "OK",
        [("Content-Type", "text/plain")],
        b"hi",
    )
    assert server.closing  # no FCGI_KEEP_CONN


def test_padding_and_pairs_straddling_records() -> None:
    pairs = encode_pairs([(b"A" * 200, b"v" * 300), (b"B", b"")])
    records = b"".join(
        HEADER.pack(1, 4, 1, len(pairs[i : i + 7]), 3) + pairs[i : i + 7] + b"pad"
        for i in range(0, len(pairs), 7)
    )
    server = FastCGIServerProtocol()
    events = server.receive_data(
        HEADER.pack(1, 1, 1, 8, 5)
        + struct.pack(">HB5x", 1, 1)
        + b"\0" * 5
        + records
        + HEADER.pack(1, 4, 1, 0, 0)
    )
    assert events == [RequestReceived(1, {"A" * 200: "v" * 300, "B": ""})]


def test_duplicate_params_last_wins() -> None:
    data = encode_pairs([(b"SCRIPT_NAME", b"/a"), (b"SCRIPT_NAME", b"")])
    assert decode_pairs(data) == {"SCRIPT_NAME": ""}


def test_four_byte_lengths_round_trip() -> None:
    pairs = [(b"N" * 127, b"x"), (b"M" * 128, b"y" * 70000)]
    assert decode_pairs(encode_pairs(pairs)) == {"N" * 127: "x", "M" * 128: "y" * 70000}


def test_get_values_answer() -> None:
    server = FastCGIServerProtocol(max_conns=7, max_reqs=9)
    client = FastCGIClientProtocol()
    assert (
        server.receive_data(
            client.send_get_values(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "OTHER"])
        )
        == []
    )
    assert client.receive_data(server.data_to_send()) == [
        GetValuesResult({"FCGI_MAX_CONNS": "7", "FCGI_MAX_REQS": "9", "FCGI_MPXS_CONNS": "1"})
    ]
    server = FastCGIServerProtocol(multiplex=False)
    server.receive_data(client.send_get_values(["FCGI_MPXS_CONNS"]))
    assert client.receive_data(server.data_to_send()) == [GetValuesResult({"FCGI_MPXS_CONNS": "0"})]


def test_unknown_management_type() -> None:
    server = FastCGIServerProtocol()
    server.receive_data(HEADER.pack(1, 42, 0, 0, 0))
    assert FastCGIClientProtocol().receive_data(server.data_to_send()) == [UnknownType(42)]


def test_unknown_and_refused_roles() -> None:
    server = FastCGIServerProtocol(roles=frozenset({Role.RESPONDER}))
    data = HEADER.pack(1, 1, 3, 8, 0) + struct.pack(">HB5x", 9, 1)
    data += HEADER.pack(1, 1, 4, 8, 0) + struct.pack(">HB5x", int(Role.FILTER), 1)
    assert server.receive_data(data) == []
    assert FastCGIClientProtocol().receive_data(server.data_to_send()) == [
        EndRequest(3, 0, 3),
        EndRequest(4, 0, 3),
    ]
    # Later records for the refused ids are ignored as inactive.
    assert server.receive_data(HEADER.pack(1, 5, 3, 0, 0)) == []


def test_cant_mpx_conn_when_not_multiplexing() -> None:
    server = FastCGIServerProtocol(multiplex=False)
    client = FastCGIClientProtocol()
    first, one = request_bytes(client=client, keep_conn=True)
    second, two = request_bytes(client=client, keep_conn=True)
    events = server.receive_data(one + two)
    assert events == [RequestReceived(first, PARAMS), RequestComplete(first)]
    assert client.receive_data(server.data_to_send()) == [EndRequest(second, 0, 1)]


def test_multiplexed_interleaving_and_stream_limit() -> None:
    server = FastCGIServerProtocol(Limits(max_streams=2))
    client = FastCGIClientProtocol()
    ids = [client.begin_request(keep_conn=True) for _ in range(3)]
    data = b"".join(client.send_begin(i) for i in ids)
    data += b"".join(client.send_params(i, {"N": str(i)}) for i in ids[:2])
    data += b"".join(client.send_params(i, {}) + client.send_stdin(i, b"%d" % i) for i in ids[:2])
    data += b"".join(client.send_stdin(i, b"") for i in reversed(ids[:2]))
    events = server.receive_data(data)
    assert events == [
        RequestReceived(ids[0], {"N": str(ids[0])}),
        BodyReceived(ids[0], b"%d" % ids[0]),
        RequestReceived(ids[1], {"N": str(ids[1])}),
        BodyReceived(ids[1], b"%d" % ids[1]),
        RequestComplete(ids[1]),
        RequestComplete(ids[0]),
    ]
    assert client.receive_data(server.data_to_send()) == [EndRequest(ids[2], 0, 2)]  # OVERLOADED
    out = server.end_response(ids[1]) + server.start_response(
        ids[0], "204 No Content", [], end=True
    )
    assert [e for e in client.receive_data(out) if isinstance(e, EndRequest)] == [
        EndRequest(ids[1], 0, 0),
        EndRequest(ids[0], 0, 0),
    ]
    assert not server.closing and server.idle


def test_authorizer_with_and_without_stdin() -> None:
    for stdin in (True, False):
        server = FastCGIServerProtocol()
        rid, data = request_bytes(
            {"FCGI_ROLE": "AUTHORIZER"}, role=Role.AUTHORIZER, stdin=stdin, keep_conn=True
        )
        assert server.receive_data(data) == [
            RequestReceived(rid, {"FCGI_ROLE": "AUTHORIZER"}, Role.AUTHORIZER),
            RequestComplete(rid),
        ]
        out = server.start_response(rid, "200 OK", [("Variable-User", "alice")], end=True)
        assert b"Variable-User: alice\r\n" in out


def test_filter_gets_stdin_and_data() -> None:
    server = FastCGIServerProtocol()
    rid, data = request_bytes({"FCGI_DATA_LENGTH": "4"}, b"in", role=Role.FILTER, data=b"file")
    assert server.receive_data(data) == [
        RequestReceived(rid, {"FCGI_DATA_LENGTH": "4"}, Role.FILTER),
        BodyReceived(rid, b"in"),
        FilterDataReceived(rid, b"file"),
        RequestComplete(rid),
    ]


def test_abort_before_and_after_complete() -> None:
    client = FastCGIClientProtocol()
    server = FastCGIServerProtocol()
    rid = client.begin_request(keep_conn=True)
    head = client.send_begin(rid) + client.send_params(rid, PARAMS) + client.send_params(rid, {})
    assert server.receive_data(head + client.send_abort(rid)) == [
        RequestReceived(rid, PARAMS),
        RequestAborted(rid),
    ]
    assert server.receive_data(client.send_stdin(rid, b"late")) == []  # dropped
    assert client.receive_data(server.end_response(rid))[-1] == EndRequest(rid, 0, 0)
    assert server.receive_data(client.send_abort(rid)) == []  # now inactive: ignored


def test_limits_at_and_past() -> None:
    params = {"X": "v" * 100}
    size = len(encode_pairs([(b"X", b"v" * 100)]))
    assert FastCGIServerProtocol(Limits(max_header_bytes=size)).receive_data(
        request_bytes(params)[1]
    )
    with pytest.raises(RemoteProtocolError) as info:
        FastCGIServerProtocol(Limits(max_header_bytes=size - 1)).receive_data(
            request_bytes(params)[1]
        )
    assert info.value.status == 431
    many = {f"K{i}": "" for i in range(5)}
    assert FastCGIServerProtocol(Limits(max_header_count=5)).receive_data(request_bytes(many)[1])
    with pytest.raises(RemoteProtocolError, match="params"):
        FastCGIServerProtocol(Limits(max_header_count=4)).receive_data(request_bytes(many)[1])
    assert FastCGIServerProtocol(Limits(max_body=10)).receive_data(request_bytes(body=b"x" * 10)[1])
    with pytest.raises(RemoteProtocolError) as info:
        FastCGIServerProtocol(Limits(max_body=10)).receive_data(request_bytes(body=b"x" * 11)[1])
    assert info.value.status == 413


@pytest.mark.parametrize(
    "data",
    [
        HEADER.pack(2, 1, 1, 8, 0) + b"\0" * 8,  # version 2
        HEADER.pack(1, 1, 1, 2, 0) + b"\0\1",  # short BEGIN_REQUEST
        request_bytes()[1] + request_bytes()[1],  # BEGIN for an active id
        HEADER.pack(1, 1, 1, 8, 0)
        + struct.pack(">HB5x", 1, 0)
        + HEADER.pack(1, 5, 1, 1, 0)
        + b"x",  # STDIN before PARAMS ended
        HEADER.pack(1, 1, 1, 8, 0)
        + struct.pack(">HB5x", 1, 0)
        + HEADER.pack(1, 4, 1, 3, 0)
        + b"\x05ab"
        + HEADER.pack(1, 4, 1, 0, 0),  # truncated pair
    ],
    ids=["version", "short-begin", "duplicate-id", "out-of-order", "truncated-pair"],
)
def test_protocol_errors(data: bytes) -> None:
    server = FastCGIServerProtocol()
    with pytest.raises(RemoteProtocolError):
        byte_by_byte(server, data)
    assert server.closing
    assert server.error_response(RemoteProtocolError("x")) == b""


def test_output_splits_large_bodies_into_records() -> None:
    server = FastCGIServerProtocol()
    rid, data = request_bytes()
    server.receive_data(data)
    body = bytes(range(256)) * 600  # 153600 bytes: three records
    out = server.start_response(rid, "200 OK", [("Connection", "close")], body, end=True)
    client = FastCGIClientProtocol()
    events = client.receive_data(out)
    stdout = [e for e in events if isinstance(e, Stdout)]
    assert len(stdout) == 3 and all(len(e.data) <= 65535 for e in stdout)
    status, _, headers, received = parse_cgi_response(b"".join(e.data for e in stdout))
    assert (status, headers, received) == (200, [], body)  # hop-by-hop Connection dropped


def test_reject_503_is_overloaded_and_abort_closes() -> None:
    server = FastCGIServerProtocol()
    client = FastCGIClientProtocol()
    rid, data = request_bytes(client=client, keep_conn=True)
    server.receive_data(data)
    events = client.receive_data(
        server.reject(rid, "503 Service Unavailable", [("Retry-After", "1")], b"busy")
    )
    assert events[-1] == EndRequest(rid, 0, 2)
    rid, data = request_bytes(client=client, keep_conn=True)
    server.receive_data(data)
    server.start_response(rid, "200 OK", [])
    assert server.abort_response(rid) == b""
    assert server.closing
    with pytest.raises(LocalProtocolError):
        server.send_body(rid, b"more")


def test_stderr_is_read_by_the_client() -> None:
    client = FastCGIClientProtocol()
    assert client.receive_data(HEADER.pack(1, 7, 1, 3, 0) + b"err") == [Stderr(1, b"err")]


latin1 = st.text(st.characters(max_codepoint=255), max_size=300)


@settings(max_examples=150, deadline=None)
@given(
    params=st.dictionaries(latin1.filter(bool), latin1, max_size=20),
    body=st.binary(max_size=70000),
    cuts=st.lists(st.integers(min_value=0, max_value=80000), max_size=8),
    role=st.sampled_from([Role.RESPONDER, Role.FILTER]),
)
def test_client_to_server_round_trip(
    params: dict[str, str], body: bytes, cuts: list[int], role: Role
) -> None:
    rid, data = request_bytes(
        params, body, role=role, data=body[::-1] if role is Role.FILTER else None
    )
    server = FastCGIServerProtocol(Limits(max_header_bytes=1 << 20))
    events: list[Event] = []
    position = 0
    for cut in sorted(c for c in cuts if c < len(data)):
        events += server.receive_data(data[position:cut])
        position = cut
    events += server.receive_data(data[position:])
    expected: list[Event] = [RequestReceived(rid, params, role)]
    if body:
        expected.append(BodyReceived(rid, body))
    if role is Role.FILTER and body:
        expected.append(FilterDataReceived(rid, body[::-1]))
    expected.append(RequestComplete(rid))
    assert merge(events) == expected


@settings(max_examples=100, deadline=None)
@given(
    headers=st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True),
            st.from_regex(r"[ -~]{0,40}", fullmatch=True),
        ),
        max_size=8,
    ),
    chunks=st.lists(st.binary(max_size=70000), max_size=4),
)
def test_server_to_client_round_trip(headers: list[tuple[str, str]], chunks: list[bytes]) -> None:
    hop = {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
    server = FastCGIServerProtocol()
    rid, data = request_bytes()
    server.receive_data(data)
    out = server.start_response(rid, "201 Created", headers)
    out += b"".join(server.send_body(rid, chunk) for chunk in chunks)
    out += server.end_response(rid)
    client = FastCGIClientProtocol()
    events = []
    for i in range(0, len(out), 1000):
        events += client.receive_data(out[i : i + 1000])
    assert events[-1] == EndRequest(rid, 0, 0)
    stdout = b"".join(e.data for e in events if isinstance(e, Stdout))
    status, reason, got, body = parse_cgi_response(stdout)
    assert (status, reason) == (201, "Created")
    assert got == [(n, v.strip()) for n, v in headers if n.lower() not in hop]
    assert body == b"".join(chunks)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_gives_events_or_remote_errors_only(data: bytes) -> None:
    server = FastCGIServerProtocol(Limits(max_header_bytes=256, max_body=256))
    try:
        server.receive_data(data)
        server.receive_data(b"")
    except RemoteProtocolError:
        pass
    server.data_to_send()
