"""Fuzz target: the HTTP/1.1 server (over llhttp) and the HTTP client parser.

Input layout: 4 config bytes, then the bytes a client sends.

* byte 0, bits 0-1: 0-2 the server; 3 the client (``HTTPClientProtocol``)
  reads the payload as responses instead.  bits 2-4: which limit byte 1 sets
  (0: none, the defaults); bits 5-7: ``max_pipelined`` (1, 2, 3, 4, 16 ...).
* byte 1: that limit's value.
* bytes 2-3: the seed that cuts the payload into pieces.

What must hold for every input (any exception is a finding):

* only ``RemoteProtocolError`` comes out of ``receive_data``, with a status the
  server answers (400, 413, 414, 431, 501, 505), and it never hides another
  exception: llhttp turns any exception raised in a callback into "User
  callback error", so the cause chain is checked too;
* fed whole or in pieces, the same events (body pieces joined) and the same
  error -- except the raw bound on a head still being received (431), which
  by design counts the bytes of the feeds that left the head incomplete;
* events in order: (RequestReceived, BodyReceived*, RequestComplete)*, then at
  most one request still being received; the environ is CGI-shaped (the
  derived variables present, latin-1 str, no Transfer-Encoding, Host for
  HTTP/1.1); a body matches its Content-Length and ``max_body``;
* the responses, made in order, parse back through the client in order with
  the right bodies; a held error's answer comes last;
* the client parser raises nothing but ``RemoteProtocolError``.

Run: ``python fuzz/fuzz_http.py --runs 1000000`` (see fuzz/README.md).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Hashable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

with harness.instrumented(__name__ == "__main__"):
    import httptools

    from dumbwaiter.protocols import (
        BodyReceived,
        Event,
        Limits,
        PeerError,
        RemoteProtocolError,
        RequestComplete,
        RequestReceived,
    )
    from dumbwaiter.protocols.http import HTTPServerProtocol
    from dumbwaiter.protocols.http_client import (
        ConnectionClosed,
        Data,
        EndOfMessage,
        HTTPClientProtocol,
        Response,
    )

DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"
STATUSES = (400, 413, 414, 431, 501, 505)
PIPELINED = (1, 2, 3, 4, 16, 16, 16, 16)
RAW_BOUND = ("header section too large", 431)
#: A header value of obs-text that str.splitlines() and str.strip() would mangle.
OBS_TEXT = "\xa0caf\xe9\x85\x1c\xa0"
#: Limits llhttp's callbacks check on the part of a span (URL, body) fed so far.
LIMITS = (413, 414, 431)


def make_server(config: bytes) -> tuple[HTTPServerProtocol, Limits]:
    mode, value = config[0], config[1]
    which = (mode >> 2) & 7
    limits = Limits()
    if which == 1:
        limits = Limits(max_header_bytes=value)
    elif which == 2:
        limits = Limits(max_header_count=value % 16)
    elif which == 3:
        limits = Limits(max_body=value)
    elif which == 4:
        limits = Limits(max_request_line=value)
    elif which == 5:
        limits = Limits(value * 2, value % 8, value % 64, max_body=value)
    server = HTTPServerProtocol(limits, date=lambda: DATE, max_pipelined=PIPELINED[mode >> 5])
    return server, limits


def check_cause(error: BaseException) -> None:
    """A RemoteProtocolError may wrap llhttp's own error, never a bug."""
    seen: BaseException | None = error.__context__
    while seen is not None:
        ours = isinstance(seen, RemoteProtocolError | httptools.HttpParserError)
        if not ours and type(seen).__name__ != "_Stop":
            raise AssertionError(f"a bug reported as {error!r}") from seen
        seen = seen.__context__


def feed(
    server: HTTPServerProtocol, pieces: list[bytes]
) -> tuple[list[Event], RemoteProtocolError | None, bool]:
    """The events, the error (raised, or held for after the responses owed,
    as http.py holds one found in bytes that completed requests), and
    whether it was held."""
    events: list[Event] = []
    try:
        for piece in pieces:
            events += server.receive_data(piece)
    except RemoteProtocolError as exc:
        check_cause(exc)
        return events, exc, False
    if events and isinstance(events[-1], PeerError):  # always the last
        held = events.pop().error
        check_cause(held)
        return events, held, True
    return events, None, False


def merge(events: list[Event]) -> list[Event]:
    merged: list[Event] = []
    for event in events:
        if isinstance(event, BodyReceived) and merged and isinstance(merged[-1], BodyReceived):
            merged[-1] = BodyReceived(1, merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def check_requests(events: list[Event], limits: Limits) -> list[tuple[str, bool]]:
    """The order and the environ; returns (method, HTTP/1.0) per complete request."""
    complete = []
    current: dict[str, str] | None = None
    size = 0
    for event in events:
        assert event.stream_id == 1
        if isinstance(event, RequestReceived):
            assert current is None, "a request began before the previous one completed"
            current = environ = event.environ
            size = 0
            for key, value in environ.items():
                key.encode("latin-1"), value.encode("latin-1")
            protocol = environ["SERVER_PROTOCOL"]
            assert protocol in ("HTTP/1.0", "HTTP/1.1")
            assert environ["SCRIPT_NAME"] == ""
            assert environ["REQUEST_METHOD"].isupper()
            assert "QUERY_STRING" in environ and "REQUEST_URI" in environ
            assert len(environ["REQUEST_URI"]) <= limits.max_request_line
            assert "HTTP_TRANSFER_ENCODING" not in environ and "HTTP_PROXY" not in environ
            assert protocol == "HTTP/1.0" or "HTTP_HOST" in environ
            length = environ.get("CONTENT_LENGTH")
            if length is not None:
                assert length.strip(" \t").isdigit()
        elif isinstance(event, BodyReceived):
            assert current is not None and event.data
            size += len(event.data)
            assert not limits.max_body or size <= limits.max_body
        else:
            assert isinstance(event, RequestComplete) and current is not None
            length = current.get("CONTENT_LENGTH")
            if length is not None:  # never with chunked: llhttp refuses both
                assert size == int(length.strip(" \t").lstrip("0") or "0"), (size, length)
            complete.append((current["REQUEST_METHOD"], current["SERVER_PROTOCOL"] == "HTTP/1.0"))
            current = None
    return complete


def answer(
    server: HTTPServerProtocol,
    complete: list[tuple[str, bool]],
    held: RemoteProtocolError | None,
) -> None:
    """Respond to every complete request in order (alternating framings),
    then to the ``held`` error, as a server does; the client must read the
    responses back in that order."""
    client = HTTPClientProtocol()
    out = []
    for i, (method, _) in enumerate(complete):
        client.send_request(method, "/", [])
        body = b"response %d" % i
        sent = [("X-N", str(i)), ("Keep-Alive", "dropped"), ("X-Obs", OBS_TEXT)]
        if i % 3 == 0:
            out.append(server.start_response(1, "200 OK", sent, body, end=True))
        elif i % 3 == 1:
            out.append(server.start_response(1, "200 OK", sent))
            out.append(server.send_body(1, body))
            out.append(server.end_response(1))
        else:
            sent.append(("Content-Length", str(len(body))))
            out.append(server.start_response(1, "201 Created", sent, body[:3]))
            out.append(server.send_body(1, body[3:]))
            out.append(server.end_response(1))
    if held is not None:
        out.append(server.error_response(held))
    closing = server.closing
    events = client.receive_data(b"".join(out))
    if closing:
        events += client.receive_data(b"")
    responses: list[tuple[int, dict[bytes, bytes], bytes]] = []
    body = b""
    interim = False
    for event in events:
        if isinstance(event, Response) and event.status == 100:
            interim = True  # 100 Continue owed to the (incomplete) request behind
        elif isinstance(event, EndOfMessage) and interim:
            interim = False
        elif isinstance(event, Response):
            assert event.status >= 200
            headers = dict(event.headers)
            assert b"Keep-Alive" not in headers
            assert headers.get(b"X-Obs", OBS_TEXT.encode("latin-1")) == OBS_TEXT.encode("latin-1")
            responses.append((event.status, headers, b""))
        elif isinstance(event, Data):
            body += event.data
        elif isinstance(event, EndOfMessage):
            status, headers, _ = responses[-1]
            responses[-1] = (status, headers, body)
            body = b""
        else:
            assert isinstance(event, ConnectionClosed)
    answered = [r for r in responses if b"X-N" in r[1]]
    for i, (_, headers, got) in enumerate(answered):
        assert headers[b"X-N"] == str(i).encode(), (i, headers)
        method = complete[i][0]
        assert got == (b"" if method == "HEAD" else b"response %d" % i), (got, method)
        if headers.get(b"Connection") == b"close":
            assert i == len(answered) - 1
    # All are answered, unless one closed the connection (Connection: close).
    last = answered[-1][1] if answered else {}
    assert len(answered) == len(complete) or last.get(b"Connection") == b"close"
    errors = [r for r in responses if b"X-N" not in r[1]]
    if errors:
        assert held is not None and len(errors) == 1 and responses[-1] is errors[0]
        assert errors[0][0] in STATUSES


def server_input(config: bytes, payload: bytes) -> Hashable:
    whole, limits = make_server(config)
    events, error, held = feed(whole, [payload] if payload else [])
    cut, _ = make_server(config)
    cut_events, cut_error, _ = feed(cut, harness.cuts(payload, config[2] << 8 | config[3]))
    outcome = None if error is None else (str(error), error.status)
    cut_outcome = None if cut_error is None else (str(cut_error), cut_error.status)
    if outcome is None or cut_outcome is None:
        # The raw bound counts what the feeds bring while a head is incomplete.
        assert outcome == cut_outcome or RAW_BOUND in (outcome, cut_outcome)
    elif outcome != cut_outcome:
        # Both refused, but llhttp calls back with the part of a span it has
        # (the target so far, the body so far), so a limit may be found
        # before a malformation further on, or after it.
        assert outcome[1] in LIMITS or cut_outcome[1] in LIMITS, (outcome, cut_outcome)
    elif outcome is None:
        assert merge(events) == merge(cut_events)
    for error_ in (error, cut_error):
        if error_ is not None:
            assert error_.status in STATUSES, error_
    raised = error is not None and not held
    complete = check_requests(events, limits)
    check_requests(cut_events, limits)
    if raised:
        assert error is not None
        answer_ = whole.error_response(error)
        assert answer_.startswith(b"HTTP/1.1 %d " % error.status) and whole.closing
        assert whole.receive_data(b"more") == []
        signature = re.sub(r"\d+", "N", str(error))
        return ("error", error.status, signature)
    answer(whole, complete, error if held else None)
    whole.receive_data(b"")
    kinds = tuple(type(e).__name__[7:9] for e in merge(events)[:24])
    return kinds, None if error is None else re.sub(r"\d+", "N", str(error))


def client_input(config: bytes, payload: bytes) -> Hashable:
    client = HTTPClientProtocol(max_head=64 + config[1] * 16)
    methods = ["GET", "HEAD", "POST"]
    for i in range(config[3] % 5):
        client.send_request(methods[(config[2] >> i) % 3], "/", [])
    kinds = []
    try:
        for piece in [*harness.cuts(payload, config[2]), b""]:
            kinds += [type(e).__name__[:2] for e in client.receive_data(piece)]
    except RemoteProtocolError as exc:
        return ("bad", re.sub(r"b?'.*'|\d+", "", str(exc)))
    return tuple(kinds[:24])


def one_input(data: bytes) -> Hashable:
    config, payload = harness.config(data)
    if config[0] & 3 == 3:
        return client_input(config, payload)
    return server_input(config, payload)


# -- seeds ---------------------------------------------------------------------------------
POST = b"POST /up?x=1 HTTP/1.1\r\nHost: h\r\n"
REQUESTS = [
    b"GET /a%20b/c?q=1 HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\nCookie: a=1\r\n\r\n",
    POST + b"Content-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    POST + b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\n, w\r\n0\r\nT: x\r\n\r\n",
    POST + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD /h HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET http://user@other.example:8080/p?q#f HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    POST + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\nHost: h\n\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x\r\nok\r\n0\r\nT: 1\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
]


TOKENS = [
    b"\r\n",
    b"\r\n\r\n",
    b"Host: h\r\n",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: ",
    b"chunked",
    b"gzip, ",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Connection: Upgrade\r\nUpgrade: x\r\n",
    b"Expect: 100-continue\r\n",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"0\r\n\r\n",
    b";ext=v",
    b"0" * 32,
    b"%2F",
    b"http://a.example",
    b"\n",
    b"\r",
    b" ",
    b"\t",
]


def seeds() -> Iterator[bytes]:
    for i, request in enumerate(REQUESTS):
        yield bytes([i % 3, 0, 0, i]) + request
        yield bytes([(i % 8) << 2, 40, 1, i]) + request + REQUESTS[(i + 1) % len(REQUESTS)]
    yield b"\x00\x00\x00\x00" + b"".join(REQUESTS[:4])
    for i, response in enumerate(RESPONSES):
        yield bytes([3, 255, 0, i + 1]) + response


if __name__ == "__main__":
    harness.main("http", one_input, seeds, TOKENS)
