"""HTTP/1.1 under hypothesis: properties that hold for any input.

* pipelined requests, fed in any pieces and answered with any framing, get
  their responses in order, a later ``100 Continue`` only after the
  responses before it;
* chunked bodies with random chunk sizes, extensions and trailers round-trip;
* request smuggling preconditions (RFC 9112 sections 2.2, 5.2, 6.1, 6.3, 7.1,
  11.2) are refused with 400, wherever they sit in a pipeline and however the
  bytes are cut, and never give the request a ``RequestComplete``;
* every limit: at the limit accepted, one past refused with its status;
* random and mutated input gives events or ``RemoteProtocolError`` only,
  the same whatever the chunking, and no error hides another exception
  (llhttp reports any exception in a callback as "User callback error").

``HYPOTHESIS_PROFILE=fuzz`` multiplies every budget here by 1000.
"""

from __future__ import annotations

import itertools
import os
import string
from typing import Any

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dumbwaiter.protocols import (
    BodyReceived,
    Event,
    Limits,
    PeerError,
    RemoteProtocolError,
    RequestComplete,
    RequestReceived,
)
from dumbwaiter.protocols.http import CONTINUE, HTTPServerProtocol
from dumbwaiter.protocols.http_client import (
    ClientEvent,
    ConnectionClosed,
    Data,
    EndOfMessage,
    HTTPClientProtocol,
    Response,
)

#: Under HYPOTHESIS_PROFILE=fuzz every budget grows by FUZZ_SCALE (default 1000).
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
SCALE = int(os.environ.get("FUZZ_SCALE", "1000")) if FUZZ else 1
DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"


def budget(examples: int) -> settings:
    """``examples`` in CI; many more under ``HYPOTHESIS_PROFILE=fuzz``."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def make(limits: Limits = Limits(), **kwargs: Any) -> HTTPServerProtocol:  # noqa: B008
    return HTTPServerProtocol(limits, date=lambda: DATE, **kwargs)


def chop(data: bytes, at: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in at)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def no_hidden_bug(error: BaseException) -> None:
    """Only llhttp's own errors (and our control flow) may sit under a
    RemoteProtocolError; anything else is a bug reported as a 400."""
    seen = error.__context__
    while seen is not None:
        assert isinstance(seen, RemoteProtocolError | httptools.HttpParserError) or (
            type(seen).__name__ == "_Stop"
        ), f"{seen!r} hidden under {error!r}"
        seen = seen.__context__


def feed(
    proto: HTTPServerProtocol, pieces: list[bytes]
) -> tuple[list[Event], RemoteProtocolError | None]:
    """The events, and the error raised or held for after the responses."""
    events: list[Event] = []
    try:
        for piece in pieces:
            events += proto.receive_data(piece)
    except RemoteProtocolError as exc:
        no_hidden_bug(exc)
        return events, exc
    held = None
    if events and isinstance(events[-1], PeerError):  # answered after the responses owed
        held = events.pop().error
        no_hidden_bug(held)
    return events, held


def merge(events: list[Event]) -> list[Any]:
    out: list[Any] = []
    for event in events:
        if isinstance(event, RequestReceived):
            out.append(("request", event.environ))
        elif isinstance(event, BodyReceived):
            if out and out[-1][0] == "body":
                out[-1] = ("body", out[-1][1] + event.data)
            else:
                out.append(("body", event.data))
        else:
            assert isinstance(event, RequestComplete)
            out.append(("complete",))
    return out


class Parsed:
    """The client's events as whole responses: (status, headers, body)."""

    def __init__(self, events: list[ClientEvent]) -> None:
        self.responses: list[tuple[int, dict[bytes, bytes], bytes]] = []
        self.closed = False
        body = b""
        for event in events:
            if isinstance(event, Response):
                self.responses.append((event.status, dict(event.headers), b""))
            elif isinstance(event, Data):
                body += event.data
            elif isinstance(event, EndOfMessage):
                status, headers, _ = self.responses[-1]
                self.responses[-1] = (status, headers, body)
                body = b""
            else:
                assert isinstance(event, ConnectionClosed)
                self.closed = True


# -- valid requests -----------------------------------------------------------------------
TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^`|~"
field_names = st.text(TOKEN, min_size=1, max_size=12).filter(
    lambda n: (
        n.lower()
        not in ("host", "content-length", "transfer-encoding", "connection", "expect", "upgrade")
    )
)
field_values = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"], exclude_characters="\x7f"),
    max_size=20,
).map(lambda v: v.strip(" \t"))
hex_digits = st.sampled_from(["%x", "%X", "%04x", "%08X"])
extensions = st.lists(
    st.sampled_from([";a", ";a=b", ';n="v"', ';q="a\\"b"', ";x-y=1.5", ";" + "e" * 40]),
    max_size=3,
).map("".join)


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` in chunks of random sizes, hex spellings and extensions, then
    a last chunk with maybe a trailer section."""
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=6)))
    out = []
    for start, end in itertools.pairwise([0, *cuts, len(body)]):
        if end > start:
            size = (draw(hex_digits) % (end - start)).encode()
            out.append(size + draw(extensions).encode() + b"\r\n" + body[start:end] + b"\r\n")
    trailer = draw(st.lists(st.tuples(field_names, field_values), max_size=3))
    last = (b"0" * draw(st.integers(1, 3))) + draw(extensions).encode() + b"\r\n"
    fields = b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailer)
    return b"".join(out) + last + fields + b"\r\n"


@st.composite
def requests(draw: st.DrawFn, keep_alive: bool = True) -> tuple[bytes, str, bytes]:
    """A valid request: its bytes, its method and its body."""
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]))
    path = "/" + draw(st.text(string.ascii_letters + string.digits + "-._~/", max_size=20))
    lines = [f"{method} {path} HTTP/1.1\r\n", "Host: example.org\r\n"]
    lines += [
        f"{n}: {v}\r\n" for n, v in draw(st.lists(st.tuples(field_names, field_values), max_size=4))
    ]
    if not keep_alive:
        lines.append("Connection: close\r\n")
    body = draw(st.binary(max_size=100))
    if body and draw(st.booleans()):
        if draw(st.booleans()):
            lines.append("Expect: 100-continue\r\n")
        lines.append("Transfer-Encoding: chunked\r\n\r\n")
        framed = draw(chunked_body(body))
    else:
        if body or draw(st.booleans()):
            zeros = "0" * draw(st.sampled_from([0, 0, 1, 30]))
            lines.append(f"Content-Length: {zeros}{len(body)}\r\n")
        lines.append("\r\n")
        framed = body
    return "".join(lines).encode("latin-1") + framed, method, body


@budget(150)
@given(
    body=st.binary(max_size=300),
    data=st.data(),
    at=st.lists(st.integers(min_value=0), max_size=20),
)
def test_chunked_bodies_round_trip(body: bytes, data: st.DataObject, at: list[int]) -> None:
    framed = data.draw(chunked_body(body))
    request = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + framed
    events, error = feed(make(), chop(request, at))
    assert error is None
    merged = merge(events)
    assert merged[0][0] == "request" and merged[-1] == ("complete",)
    assert b"".join(part[1] for part in merged if part[0] == "body") == body
    environ = merged[0][1]
    assert "HTTP_TRANSFER_ENCODING" not in environ and "CONTENT_LENGTH" not in environ
    assert [e for e in events if isinstance(e, RequestReceived)] == [events[0]]  # trailer dropped


@budget(100)
@given(
    batch=st.lists(requests(), min_size=1, max_size=5),
    framings=st.lists(st.sampled_from(["whole", "stream", "length"]), min_size=5, max_size=5),
    at=st.lists(st.integers(min_value=0), max_size=12),
    answer_early=st.booleans(),
    client_at=st.lists(st.integers(min_value=0), max_size=12),
)
def test_pipelined_requests_are_answered_in_order(
    batch: list[tuple[bytes, str, bytes]],
    framings: list[str],
    at: list[int],
    answer_early: bool,
    client_at: list[int],
) -> None:
    proto = make()
    client = HTTPClientProtocol()
    wire = b"".join(request for request, _, _ in batch)
    out = []
    events: list[Event] = []
    answered = 0

    def answer_complete() -> None:
        nonlocal answered
        done = sum(isinstance(e, RequestComplete) for e in events)
        while answered < done:
            body = b"answer %d" % answered
            headers = [("X-N", str(answered))]
            framing = framings[answered]
            if framing == "whole":
                out.append(proto.start_response(1, "200 OK", headers, body, end=True))
            else:
                if framing == "length":
                    headers.append(("Content-Length", str(len(body))))
                out.append(proto.start_response(1, "200 OK", headers, body[:2]))
                out.append(proto.send_body(1, body[2:]))
                out.append(proto.end_response(1))
            answered += 1

    for piece in chop(wire, at):
        events += proto.receive_data(piece)
        out.append(proto.data_to_send())  # 100 Continue, when it is owed at once
        if answer_early:
            answer_complete()
    answer_complete()
    assert answered == len(batch)
    merged = merge(events)
    assert [m[1]["REQUEST_METHOD"] for m in merged if m[0] == "request"] == [m for _, m, _ in batch]
    assert [m[1] for m in merged if m[0] == "body"] == [b for _, _, b in batch if b]
    for _, method, _ in batch:
        client.send_request(method, "/", [])
    got: list[ClientEvent] = []
    for piece in chop(b"".join(out), client_at):
        got += client.receive_data(piece)
    final = [r for r in Parsed(got).responses if r[0] != 100]
    assert [r[1][b"X-N"] for r in final] == [str(i).encode() for i in range(len(batch))]
    for i, ((_, method, _), (status, _, body)) in enumerate(zip(batch, final, strict=True)):
        assert status == 200
        assert body == (b"" if method == "HEAD" else b"answer %d" % i)


def test_100_continue_waits_for_the_responses_before() -> None:
    """A later request's 100 Continue is never sent into an earlier response."""
    first = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
    second = b"POST /2 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    proto = make()
    proto.receive_data(first + second)
    assert proto.data_to_send() == b""
    out = proto.start_response(1, "200 OK", [], b"one")
    assert CONTINUE not in out
    assert proto.end_response(1).endswith(CONTINUE)


# -- smuggling preconditions ------------------------------------------------------------------
POST = b"POST /s HTTP/1.1\r\nHost: h\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n"

#: Request framings RFC 9112 refuses, or that front servers and llhttp read
#: differently -- each with the reason a 400 is right.
SMUGGLING = {
    # 6.3 item 3: TE and CL together "ought to be handled as an error".
    "cl-then-te": POST + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-then-cl": CHUNKED + b"Content-Length: 4\r\n\r\n0\r\n\r\n",
    "te-then-cl-case": POST + b"transfer-encoding: chunked\r\nCONTENT-LENGTH: 4\r\n\r\n0\r\n\r\n",
    "cl-in-trailer": CHUNKED + b"\r\n0\r\nContent-Length: 4\r\n\r\n",
    # 6.3 item 5: an invalid Content-Length is unrecoverable.
    "cl-differing": POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "cl-same-twice": POST + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    "cl-list": POST + b"Content-Length: 2, 2\r\n\r\nab",
    "cl-plus": POST + b"Content-Length: +2\r\n\r\nab",
    "cl-minus": POST + b"Content-Length: -2\r\n\r\nab",
    "cl-hex": POST + b"Content-Length: 0x2\r\n\r\nab",
    "cl-space": POST + b"Content-Length: 1 1\r\n\r\nab",
    "cl-empty": POST + b"Content-Length: \r\n\r\n",
    "cl-overflow": POST + b"Content-Length: 99999999999999999999999\r\n\r\n",
    # 6.3 item 4: chunked not the final coding: the length cannot be known.
    "te-gzip-only": POST + b"Transfer-Encoding: gzip\r\n\r\nab",
    "te-chunked-then-gzip": POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te-identity": POST + b"Transfer-Encoding: identity\r\n\r\nab",
    "te-quoted": POST + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n',
    "te-param": POST + b"Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
    "te-xchunked": POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te-twice": CHUNKED + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-vertical-tab": POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    # 6.1: Transfer-Encoding in HTTP/1.0 (a 1.0 recipient would ignore it).
    "te-http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # 7.1: chunk-size = 1*HEXDIG, then CRLF; chunk-data then CRLF.
    "chunk-size-not-hex": CHUNKED + b"\r\nzz\r\n",
    "chunk-size-0x": CHUNKED + b"\r\n0x2\r\nab\r\n0\r\n\r\n",
    "chunk-size-negative": CHUNKED + b"\r\n-2\r\nab\r\n0\r\n\r\n",
    "chunk-size-space-before": CHUNKED + b"\r\n 2\r\nab\r\n0\r\n\r\n",
    "chunk-size-space-after": CHUNKED + b"\r\n2 \r\nab\r\n0\r\n\r\n",
    "chunk-size-empty": CHUNKED + b"\r\n\r\nab\r\n0\r\n\r\n",
    "chunk-size-overflow": CHUNKED + b"\r\n1" + b"0" * 16 + b"\r\n",
    "chunk-data-too-long": CHUNKED + b"\r\n1\r\nab\r\n0\r\n\r\n",
    "chunk-data-too-short": CHUNKED + b"\r\n3\r\nab\r\n0\r\n\r\n",
    "chunk-ext-bare-semicolon": CHUNKED + b"\r\n2;\r\nab\r\n0\r\n\r\n",
    "chunk-ext-control": CHUNKED + b"\r\n2;a\x01\r\nab\r\n0\r\n\r\n",
    # 2.2: a bare CR is invalid; a bare LF may be a line end (MAY), and
    # front servers that do not agree on that are the smuggling; refused.
    "bare-lf-request-line": b"GET / HTTP/1.1\nHost: h\r\n\r\n",
    "bare-lf-field": b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
    "bare-lf-end-of-head": b"GET / HTTP/1.1\r\nHost: h\r\n\n",
    "bare-lf-chunk-size": CHUNKED + b"\r\n2\nab\r\n0\r\n\r\n",
    "bare-lf-chunk-data": CHUNKED + b"\r\n2\r\nab\n0\r\n\r\n",
    "bare-lf-last-chunk": CHUNKED + b"\r\n0\n\r\n",
    "bare-lf-trailer": CHUNKED + b"\r\n0\r\nT: x\n\r\n",
    "bare-cr-field": b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
    "bare-cr-chunk-size": CHUNKED + b"\r\n2\rab\r\n0\r\n\r\n",
    # 5.2: obs-fold is refused (or replaced by SP, which we do not do).
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    "obs-fold-tab": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n",
    "obs-fold-te": POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "obs-fold-hiding-te": POST + b"X: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold-in-trailer": CHUNKED + b"\r\n0\r\nT: x\r\n y\r\n\r\n",
    # 5.1: no whitespace between the field name and the colon.
    "space-before-colon": POST + b"Content-Length : 2\r\n\r\nab",
    "space-before-colon-te": POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "whitespace-first-field": b"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
    # 5.5: no NUL or other controls in a field value.
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n",
    # 3.2: exactly one Host in HTTP/1.1.
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "host-list": b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
    # An Upgrade/CONNECT body would be skipped by llhttp and parsed as requests.
    "upgrade-with-body": b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
    b"Upgrade: x\r\nContent-Length: 2\r\n\r\nab",
    "connect-with-body": b"CONNECT h:1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 2\r\n\r\nab",
}
VALID = b"GET /before HTTP/1.1\r\nHost: h\r\n\r\n"
AFTER = b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n"


@pytest.mark.parametrize("case", SMUGGLING)
def test_smuggling_precondition_is_400(case: str) -> None:
    events, error = feed(make(), [SMUGGLING[case] + AFTER])
    assert error is not None and error.status == 400, error
    assert not any(isinstance(e, RequestComplete) for e in events)


@budget(200)
@given(
    case=st.sampled_from(sorted(SMUGGLING)),
    before=st.integers(0, 2),
    at=st.lists(st.integers(min_value=0), max_size=10),
)
def test_smuggling_preconditions_refused_however_fed(case: str, before: int, at: list[int]) -> None:
    """Valid requests before it complete; it and what follows it never do,
    and the answer to the error comes after theirs."""
    wire = VALID * before + SMUGGLING[case] + AFTER
    proto = make()
    events, error = feed(proto, chop(wire, at))
    assert error is not None and error.status == 400
    merged = merge(events)
    assert sum(m == ("complete",) for m in merged) == before
    paths = [m[1]["PATH_INFO"] for m in merged if m[0] == "request"]
    assert paths[:before] == ["/before"] * before and "/after" not in paths
    # The responses owed go out, then the 400 (raised or held: the server
    # answers it last), then nothing.
    client = HTTPClientProtocol()
    out = b""
    for _ in range(before):
        client.send_request("GET", "/", [])
        out += proto.start_response(1, "200 OK", [], b"ok", end=True)
    out += proto.error_response(error)
    parsed = Parsed(client.receive_data(out) + client.receive_data(b""))
    assert [r[0] for r in parsed.responses] == [200] * before + [400]
    assert proto.closing


# -- limits ------------------------------------------------------------------------------------
@budget(60)
@given(st.integers(1, 3000), st.lists(st.integers(min_value=0), max_size=8))
def test_target_limit_at_and_past(limit: int, at: list[int]) -> None:
    def request(size: int) -> bytes:
        return b"GET /" + b"t" * (size - 1) + b" HTTP/1.1\r\nHost: h\r\n\r\n"

    events, error = feed(make(Limits(max_request_line=limit)), chop(request(limit), at))
    assert error is None and isinstance(events[-1], RequestComplete)
    _, error = feed(make(Limits(max_request_line=limit)), chop(request(limit + 1), at))
    assert error is not None and error.status == 414


@budget(60)
@given(st.integers(1, 200), st.lists(st.integers(min_value=0), max_size=8))
def test_field_count_limit_at_and_past(limit: int, at: list[int]) -> None:
    def request(count: int) -> bytes:  # Host and count - 1 more
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(count - 1))
        return b"GET / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n"

    events, error = feed(make(Limits(max_header_count=limit)), chop(request(limit), at))
    assert error is None and isinstance(events[-1], RequestComplete)
    _, error = feed(make(Limits(max_header_count=limit)), chop(request(limit + 1), at))
    assert error is not None and error.status == 431


@budget(60)
@given(st.integers(30, 20_000), st.lists(st.integers(min_value=0), max_size=8))
def test_field_bytes_limit_at_and_past(limit: int, at: list[int]) -> None:
    """Counted canonically: name, ": ", value, CRLF for each field."""

    def request(size: int) -> bytes:
        host = b"Host: h\r\n"  # 9 bytes
        fill = size - len(host) - len(b"X-Fill: \r\n")
        return b"GET / HTTP/1.1\r\n" + host + b"X-Fill: " + b"f" * fill + b"\r\n\r\n"

    events, error = feed(make(Limits(max_header_bytes=limit)), chop(request(limit), at))
    assert error is None and isinstance(events[-1], RequestComplete)
    _, error = feed(make(Limits(max_header_bytes=limit)), chop(request(limit + 1), at))
    assert error is not None and error.status == 431


@budget(60)
@given(
    st.integers(1, 100_000),
    st.booleans(),
    st.data(),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_body_limit_at_and_past(
    limit: int, chunked: bool, data: st.DataObject, at: list[int]
) -> None:
    def request(size: int) -> bytes:
        body = b"b" * size
        if chunked:
            return CHUNKED + b"\r\n" + data.draw(chunked_body(body))
        return POST + b"Content-Length: %d\r\n\r\n" % size + body

    events, error = feed(make(Limits(max_body=limit)), chop(request(limit), at))
    assert error is None and isinstance(events[-1], RequestComplete)
    events, error = feed(make(Limits(max_body=limit)), chop(request(limit + 1), at))
    assert error is not None and error.status == 413
    assert not any(isinstance(e, RequestComplete) for e in events)


def test_content_length_with_many_leading_zeros() -> None:
    """Regression: 4301 digits or more made int() raise ValueError inside an
    llhttp callback, reported as a 400 "User callback error" for a valid
    request (RFC 9110 section 8.6: Content-Length = 1*DIGIT)."""
    request = POST + b"Content-Length: " + b"0" * 5000 + b"5\r\n\r\nhello"
    events, error = feed(make(), [request])
    assert error is None
    assert merge(events)[1:] == [("body", b"hello"), ("complete",)]


# -- anything at all ------------------------------------------------------------------------------
@budget(200)
@given(
    st.lists(requests(), min_size=1, max_size=3).map(lambda rs: b"".join(r for r, _, _ in rs)),
    st.lists(st.tuples(st.integers(min_value=0), st.binary(max_size=4)), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0), max_size=10),
)
def test_mutated_pipelines_same_however_fed(
    wire: bytes, mutations: list[tuple[int, bytes]], at: list[int]
) -> None:
    data = bytearray(wire)
    for position, replacement in mutations:
        position %= len(data) + 1
        data[position : position + 1] = replacement
    limits = Limits(max_header_bytes=200, max_header_count=8, max_request_line=60, max_body=80)
    whole, error = feed(make(limits), [bytes(data)])
    pieces, piece_error = feed(make(limits), chop(bytes(data), at))
    statuses = {e.status for e in (error, piece_error) if e is not None}
    assert statuses <= {400, 413, 414, 431, 501, 505}
    if error is None and piece_error is None:
        assert merge(whole) == merge(pieces)
    else:
        # Both refuse it (the raw bound on an unfinished head counts per feed).
        assert error is not None or piece_error.status == 431  # type: ignore[union-attr]
        assert piece_error is not None or error.status == 431  # type: ignore[union-attr]


@budget(200)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=6))
def test_client_parser_only_raises_remote_errors(data: bytes, at: list[int]) -> None:
    client = HTTPClientProtocol(max_head=100)
    for method in ("GET", "HEAD"):
        client.send_request(method, "/", [])
    try:
        for piece in [*chop(data, at), b""]:
            client.receive_data(piece)
    except RemoteProtocolError:
        pass
