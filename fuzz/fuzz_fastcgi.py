"""Fuzz target: the FastCGI server parser, and the client's parsers.

Input layout: 4 config bytes, then the bytes a web server sends.

* byte 0, bits 0-1: 0-2 the server; 3 the client side (``FastCGIClientProtocol``,
  ``parse_cgi_response``, ``decode_pairs``) gets the payload instead.
  bit 2: multiplexing allowed; bits 3-4: ``max_streams`` - 1; bits 5-7: which
  limit byte 1 sets (0: none, the defaults).
* byte 1: that limit's value.
* bytes 2-3: the seed that cuts the payload into pieces.

What must hold for every input (any exception is a finding):

* only ``RemoteProtocolError`` comes out of ``receive_data``; afterwards the
  server is closing, ``error_response`` is empty and more input is a
  ``LocalProtocolError``;
* fed whole or in pieces, the same events (pieces of one stream joined), the
  same replies, the same error;
* per stream, events in the order ``events.py`` promises; input within
  ``max_body``;
* replies are records the client parses (END_REQUEST, GET_VALUES_RESULT,
  UNKNOWN_TYPE);
* every complete request can be answered and the client reads the answer
  back exactly; an aborted one gets its FCGI_END_REQUEST;
* the client's parsers raise nothing but ``RemoteProtocolError``, and name-value
  pairs that decode re-encode to the same pairs.

Run: ``python fuzz/fuzz_fastcgi.py --runs 1000000`` (see fuzz/README.md).
"""

from __future__ import annotations

import json
import re
import struct
import sys
from collections.abc import Hashable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

with harness.instrumented(__name__ == "__main__"):
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
    )
    from dumbwaiter.protocols.fastcgi import FastCGIServerProtocol
    from dumbwaiter.protocols.fastcgi_client import (
        EndRequest,
        FastCGIClientProtocol,
        GetValuesResult,
        Stderr,
        Stdout,
        UnknownType,
        parse_cgi_response,
    )
    from dumbwaiter.protocols.fastcgi_records import decode_pairs, encode_pairs

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "protocols" / "corpus" / "fastcgi"
HEADER = struct.Struct(">BBHHBx")
#: A header value of obs-text that str.splitlines() and str.strip() would mangle.
OBS_TEXT = "\xa0caf\xe9\x85\x1c\xa0"


def make_server(config: bytes) -> tuple[FastCGIServerProtocol, Limits]:
    mode, value = config[0], config[1]
    which = mode >> 5
    limits = Limits(max_streams=1 + ((mode >> 3) & 3))
    if which == 1:
        limits = Limits(max_header_bytes=value, max_streams=limits.max_streams)
    elif which == 2:
        limits = Limits(max_header_count=value % 16, max_streams=limits.max_streams)
    elif which == 3:
        limits = Limits(max_body=value, max_streams=limits.max_streams)
    elif which == 4:
        limits = Limits(value * 4, value % 8, max_body=value, max_streams=limits.max_streams)
    server = FastCGIServerProtocol(limits, multiplex=bool(mode & 4), max_conns=3, max_reqs=7)
    return server, limits


def feed(
    server: FastCGIServerProtocol, pieces: list[bytes]
) -> tuple[list[Event], bytes, RemoteProtocolError | None]:
    events: list[Event] = []
    replies = []
    try:
        for piece in pieces:
            events += server.receive_data(piece)
            replies.append(server.data_to_send())
    except RemoteProtocolError as exc:
        return events, b"".join(replies), exc
    return events, b"".join(replies), None


def merge(events: list[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            isinstance(event, BodyReceived | FilterDataReceived)
            and type(last) is type(event)
            and last.stream_id == event.stream_id
        ):
            merged[-1] = type(event)(event.stream_id, last.data + event.data)
        else:
            merged.append(event)
    return merged


def check_order(events: list[Event], limits: Limits) -> dict[int, str]:
    """Per stream: RequestReceived, input*, RequestComplete and/or
    RequestAborted.  Returns what each stream is owed at the end."""
    phase: dict[int, str] = {}
    received: dict[int, int] = {}
    for event in events:
        sid = event.stream_id
        now = phase.get(sid)
        assert 1 <= sid <= 0xFFFF
        if isinstance(event, RequestReceived):
            assert now in (None, "answered"), (event, now)
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.environ.items())
            assert not limits.max_header_count or len(event.environ) <= limits.max_header_count
            phase[sid] = "input"
            received[sid] = 0
        elif isinstance(event, BodyReceived | FilterDataReceived):
            assert now == "input", (event, now)
            assert event.data, "an empty input piece"
            received[sid] += len(event.data)
            assert not limits.max_body or received[sid] <= limits.max_body
        elif isinstance(event, RequestComplete):
            assert now == "input", (event, now)
            phase[sid] = "complete"
        else:
            assert isinstance(event, RequestAborted)
            assert now in ("input", "complete"), (event, now)
            phase[sid] = "aborted"
    return phase


def check_replies(replies: bytes) -> None:
    client = FastCGIClientProtocol()
    for event in client.receive_data(replies):
        assert isinstance(event, EndRequest | GetValuesResult | UnknownType), event
        if isinstance(event, EndRequest):
            assert event.protocol_status in (0, 1, 2, 3) and event.app_status == 0
        if isinstance(event, GetValuesResult):
            assert set(event.values) <= {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"}
    assert not client.receive_data(b"")


def answer(server: FastCGIServerProtocol, phase: dict[int, str]) -> None:
    """Answer every stream that is owed an answer; the client must read back
    exactly what was sent."""
    out = []
    expected: dict[int, tuple[bytes, bool]] = {}
    for sid, now in phase.items():
        if now == "complete":
            body = b"body of %d" % sid * (sid % 3)
            head = [("X-Id", str(sid)), ("Connection", "dropped"), ("X-Obs", OBS_TEXT)]
            if sid % 2:
                out.append(server.start_response(sid, "200 OK", head, body, end=True))
            else:
                out.append(server.start_response(sid, "200 OK", head))
                if body:
                    out.append(server.send_body(sid, body))
                out.append(server.end_response(sid))
            expected[sid] = (body, True)
        elif now == "aborted":
            out.append(server.end_response(sid))
            expected[sid] = (b"", False)
    client = FastCGIClientProtocol()
    stdout: dict[int, bytes] = {}
    ended = []
    for event in client.receive_data(b"".join(out)):
        assert not isinstance(event, Stderr | GetValuesResult | UnknownType)
        if isinstance(event, Stdout):
            assert event.request_id not in ended
            stdout[event.request_id] = stdout.get(event.request_id, b"") + event.data
        else:
            assert isinstance(event, EndRequest)
            assert (event.app_status, event.protocol_status) == (0, 0)
            ended.append(event.request_id)
    assert sorted(ended) == sorted(expected)
    for sid, (body, responded) in expected.items():
        if responded:
            parsed = parse_cgi_response(stdout[sid])
            assert parsed == (200, "OK", [("X-Id", str(sid)), ("X-Obs", OBS_TEXT)], body), parsed
        else:
            assert sid not in stdout


def server_input(config: bytes, payload: bytes) -> Hashable:
    whole, limits = make_server(config)
    events, replies, error = feed(whole, [payload] if payload else [])
    seed = config[2] << 8 | config[3]
    pieces = harness.cuts(payload, seed)
    cut, _ = make_server(config)
    cut_events, cut_replies, cut_error = feed(cut, pieces)
    if error is not None or cut_error is not None:
        assert error is not None and cut_error is not None, (error, cut_error)
        assert (str(error), error.status) == (str(cut_error), cut_error.status)
        assert error.status in (400, 413, 431)
        for server in (whole, cut):
            assert server.closing and server.error_response(error) == b""
            try:
                server.receive_data(b"more")
            except LocalProtocolError:
                pass
            else:
                raise AssertionError("a failed connection read on")
        check_order(cut_events, limits)
        return ("error", error.status, re.sub(r"\d+", "N", str(error)))
    assert merge(events) == merge(cut_events)
    assert replies == cut_replies
    phase = check_order(events, limits)
    check_replies(replies)
    answer(whole, phase)
    assert whole.receive_data(b"") == [] and whole.closing
    return tuple(type(e).__name__[7:9] for e in merge(events)[:24])


def client_input(config: bytes, payload: bytes) -> Hashable:
    signature: list[str] = []
    client = FastCGIClientProtocol()
    try:
        for piece in harness.cuts(payload, config[2]):
            client.receive_data(piece)
        signature.append("records")
    except RemoteProtocolError:
        signature.append("bad records")
    try:
        status, _, _, body = parse_cgi_response(payload)
        assert 0 <= status <= 999 and payload.endswith(body)
        signature.append("cgi")
    except RemoteProtocolError:
        signature.append("bad cgi")
    try:
        pairs = decode_pairs(payload, config[1] % 4)
    except RemoteProtocolError:
        signature.append("bad pairs")
    else:
        again = decode_pairs(
            encode_pairs((n.encode("latin-1"), v.encode("latin-1")) for n, v in pairs.items())
        )
        assert again == pairs
        signature.append("pairs")
    return tuple(signature)


def one_input(data: bytes) -> Hashable:
    config, payload = harness.config(data)
    if config[0] & 3 == 3:
        return client_input(config, payload)
    return server_input(config, payload)


# -- seeds ---------------------------------------------------------------------------------
def rec(kind: int, rid: int, content: bytes = b"", padding: int = 0) -> bytes:
    return HEADER.pack(1, kind, rid, len(content), padding) + content + bytes(padding)


def begin(rid: int, role: int = 1, flags: int = 1) -> bytes:
    return rec(1, rid, struct.pack(">HB5x", role, flags))


TOKENS = [
    HEADER.pack(1, 1, 1, 8, 0) + struct.pack(">HB5x", 1, 1),  # BEGIN_REQUEST, keep-conn
    HEADER.pack(1, 4, 1, 0, 0),  # the end of PARAMS
    HEADER.pack(1, 5, 1, 0, 0),  # the end of STDIN
    HEADER.pack(1, 8, 1, 0, 0),  # the end of DATA
    HEADER.pack(1, 2, 1, 0, 0),  # ABORT_REQUEST
    HEADER.pack(1, 9, 0, 0, 0),  # GET_VALUES
    b"\x80\x00\x00\x80",  # a four-byte length: 128
    b"\x7f",
    b"\xff\xff",
    b"FCGI_MAX_CONNS",
    b"FCGI_MPXS_CONNS",
    b"Status: ",
    b"\r\n\r\n",
]


def seeds() -> Iterator[bytes]:
    configs = [b"\x04\x00\x00\x01", b"\x1c\x00\x01\x00", b"\x24\x40\x00\x02", b"\x64\x20\x00\x03"]
    streams = [path.read_bytes() for path in sorted(CORPUS.glob("*.bin"))]
    params = encode_pairs([(b"REQUEST_METHOD", b"POST"), (b"N" * 128, b"v" * 127), (b"E", b"")])
    streams += [
        begin(1) + rec(4, 1, params) + rec(4, 1) + rec(5, 1, b"body") + rec(5, 1),
        begin(1, 2) + rec(4, 1, params[:9]) + rec(4, 1, params[9:]) + rec(4, 1) + rec(5, 1),
        begin(1, 3) + rec(4, 1) + rec(8, 1, b"data") + rec(5, 1, b"in") + rec(8, 1) + rec(5, 1),
        begin(1) + begin(2) + rec(4, 2, params, 3) + rec(4, 1) + rec(2, 2) + rec(5, 1) + rec(2, 1),
        begin(1) + rec(2, 1) + begin(1, 9, 0) + rec(9, 0, encode_pairs([(b"FCGI_MAX_REQS", b"")])),
        rec(9, 0, encode_pairs([(b"FCGI_MPXS_CONNS", b""), (b"X", b"")])) + rec(42, 0, b"x"),
        begin(3) + rec(4, 3, params) + rec(4, 3) + rec(5, 3) + begin(4, 1, 0) + rec(4, 4),
    ]
    for i, stream in enumerate(streams):
        yield configs[i % len(configs)] + stream
    cgi = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope"
    yield b"\x03\x00\x00\x00" + rec(6, 1, cgi) + rec(7, 1, b"e") + rec(6, 1) + rec(3, 1, bytes(8))
    yield b"\x03\x01\x00\x00" + cgi
    yield b"\x03\x02\x00\x00" + params


def _corpus_expectations() -> None:
    """Fail early when the corpus moved (the seeds would silently shrink)."""
    assert any(CORPUS.glob("*.bin")), f"no corpus in {CORPUS}"
    json.loads(next(CORPUS.glob("*.json")).read_text())


if __name__ == "__main__":
    _corpus_expectations()
    harness.main("fastcgi", one_input, seeds, TOKENS)
