"""The HTTP/1.1 server protocol (and the small client that checks it).

Every request is fed three ways: whole, byte by byte, and with a pipelined
request after it (which must come out too unless the connection closes).
"""

from __future__ import annotations

import email.utils
import itertools
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dumbwaiter.protocols import (
    BodyReceived,
    Event,
    Limits,
    LocalProtocolError,
    PeerError,
    RemoteProtocolError,
    RequestComplete,
    RequestReceived,
)
from dumbwaiter.protocols.http import CONTINUE, HTTPServerProtocol
from dumbwaiter.protocols.http_client import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    HTTPClientProtocol,
    Response,
)

DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"
NEXT = b"GET /next HTTP/1.1\r\nHost: n\r\n\r\n"
NEXT_EVENTS = [("request", "GET", "/next"), ("complete",)]
WAYS = ["whole", "bytewise", "pipelined"]
TEXT = [("Content-Type", "text/plain")]
DEFAULT = Limits()
POST = b"POST / HTTP/1.1\r\nHost: h\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n"


def make(limits: Limits = DEFAULT, **kwargs: Any) -> HTTPServerProtocol:
    return HTTPServerProtocol(limits, date=lambda: DATE, **kwargs)


def summarize(events: list[Event]) -> list[tuple[Any, ...]]:
    """Events as tuples, consecutive body pieces merged (their cut is arbitrary)."""
    out: list[tuple[Any, ...]] = []
    for event in events:
        assert event.stream_id == 1
        if isinstance(event, RequestReceived):
            out.append(("request", event.environ["REQUEST_METHOD"], event.environ["PATH_INFO"]))
        elif isinstance(event, BodyReceived):
            if out and out[-1][0] == "body":
                out[-1] = ("body", out[-1][1] + event.data)
            else:
                out.append(("body", event.data))
        elif isinstance(event, RequestComplete):
            out.append(("complete",))
    return out


def pieces(data: bytes, way: str) -> list[bytes]:
    if way == "bytewise":
        return [data[i : i + 1] for i in range(len(data))]
    return [data + NEXT] if way == "pipelined" else [data]


def receive(
    data: bytes, way: str, proto: HTTPServerProtocol | None = None, closes: bool = False
) -> tuple[HTTPServerProtocol, list[Event]]:
    """Feed ``data`` the ``way`` given; returns the events of ``data`` alone."""
    proto = proto or make()
    events: list[Event] = []
    for piece in pieces(data, way):
        events += proto.receive_data(piece)
    if way == "pipelined":
        if closes:
            assert summarize(events)[-2:] != NEXT_EVENTS
        else:
            assert summarize(events[-2:]) == NEXT_EVENTS
            del events[-2:]
    return proto, events


def environ_of(events: list[Event]) -> dict[str, str]:
    assert isinstance(events[0], RequestReceived)
    return events[0].environ


def refused(data: bytes, way: str, limits: Limits = DEFAULT) -> int:
    """The status of the RemoteProtocolError ``data`` raises, fed ``way``."""
    proto = make(limits)
    with pytest.raises(RemoteProtocolError) as info:
        for piece in pieces(data, way):
            proto.receive_data(piece)
    return info.value.status


def respond(proto: HTTPServerProtocol, body: bytes = b"ok\n") -> bytes:
    return proto.start_response(1, "200 OK", TEXT, body, end=True)


# -- requests ----------------------------------------------------------------------
@pytest.mark.parametrize("way", WAYS)
def test_get_environ(way: str) -> None:
    data = (
        b"GET /a%20b/c%2Fd?x=1&y=%20 HTTP/1.1\r\nHost: example.org:81\r\nX-Test: yes  \r\n"
        b"Accept: a\r\nAccept: b\r\nCookie: c=1\r\nCookie: d=2\r\nX_Test: spoofed\r\n"
        b"Proxy: http://evil/\r\nContent-Type: text/plain\r\n\r\n"
    )
    proto, events = receive(data, way)
    assert summarize(events) == [("request", "GET", "/a b/c/d"), ("complete",)]
    assert environ_of(events) == {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/a b/c/d",
        "QUERY_STRING": "x=1&y=%20",
        "REQUEST_URI": "/a%20b/c%2Fd?x=1&y=%20",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "example.org:81",
        "HTTP_X_TEST": "yes",  # not X_Test's value; trailing whitespace gone
        "HTTP_ACCEPT": "a, b",
        "HTTP_COOKIE": "c=1; d=2",
        "CONTENT_TYPE": "text/plain",
    }
    assert not proto.idle and not proto.closing


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/%FF%fe/%C3%A9", "/\xff\xfe/\xc3\xa9", ""),  # bytes as latin-1 (PEP 3333)
        (b"/a%2Fb%2f?q=%2F", "/a/b/", "q=%2F"),
        (b"/%zz%", "/%zz%", ""),
        (b"/p#frag", "/p", ""),
        (b"*", "*", ""),
    ],
)
def test_path_info_is_percent_decoded(target: bytes, path: str, query: str) -> None:
    method = b"OPTIONS" if target == b"*" else b"GET"
    _, events = receive(method + b" " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n", "whole")
    environ = environ_of(events)
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == (path, query)
    assert environ["REQUEST_URI"] == target.decode("latin-1")


def test_absolute_form_target_gives_host() -> None:
    data = b"GET http://user@h.example:8080/p%41?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"
    environ = environ_of(receive(data, "whole")[1])
    assert environ["HTTP_HOST"] == "h.example:8080"
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == ("/pA", "q=1")
    environ = environ_of(receive(b"GET http://h?x HTTP/1.1\r\nHost: h\r\n\r\n", "whole")[1])
    assert (environ["PATH_INFO"], environ["QUERY_STRING"]) == ("/", "x")


@pytest.mark.parametrize("way", WAYS)
def test_content_length_body(way: str) -> None:
    data = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    _, events = receive(data, way)
    assert summarize(events) == [("request", "POST", "/p"), ("body", b"hello"), ("complete",)]
    assert environ_of(events)["CONTENT_LENGTH"] == "5"


@pytest.mark.parametrize("way", WAYS)
def test_chunked_body_with_extensions_and_trailer(way: str) -> None:
    data = (
        b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;name=value;q="x y"\r\nhello\r\n1\r\n \r\na;ext\r\n0123456789\r\n'
        b"0\r\nX-Trailer: t\r\nChecksum: 1\r\n\r\n"
    )
    _, events = receive(data, way)
    body = b"hello 0123456789"
    assert summarize(events) == [("request", "POST", "/p"), ("body", body), ("complete",)]
    environ = environ_of(events)
    assert "HTTP_TRANSFER_ENCODING" not in environ  # de-chunked for the application
    assert "HTTP_X_TRAILER" not in environ and "CONTENT_LENGTH" not in environ


@pytest.mark.parametrize(
    ("head", "keep_alive", "connection"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n", True, None),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n", False, b"close"),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: x, Close\r\n", False, b"close"),
        (b"GET / HTTP/1.0\r\n", False, b"close"),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n", True, b"keep-alive"),
    ],
)
@pytest.mark.parametrize("way", WAYS)
def test_keep_alive_rules(
    head: bytes, keep_alive: bool, connection: bytes | None, way: str
) -> None:
    proto, events = receive(head + b"\r\n", way, closes=not keep_alive)
    assert summarize(events) == [("request", "GET", "/"), ("complete",)]
    response = parse_response(respond(proto))
    assert response.header(b"connection") == connection
    assert proto.closing is not keep_alive
    if not keep_alive:  # nothing more is read
        assert proto.receive_data(NEXT) == []


def test_pipelined_requests_in_order() -> None:
    proto = make()
    data = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % n for n in range(5))
    events = proto.receive_data(data)
    assert summarize(events) == [
        e for n in range(5) for e in (("request", "GET", f"/{n}"), ("complete",))
    ]
    for n in range(5):
        assert not proto.idle
        assert proto.start_response(1, "200 OK", TEXT, b"%d" % n, end=True).endswith(b"%d" % n)
    assert proto.idle and not proto.closing


def test_pipeline_beyond_max_pipelined_is_left_unread() -> None:
    proto = make(max_pipelined=3)
    events = proto.receive_data(NEXT * 5)
    assert summarize(events) == NEXT_EVENTS * 3
    assert b"Connection: close" not in respond(proto) + respond(proto)
    assert b"Connection: close\r\n" in respond(proto)
    assert proto.closing


def test_error_after_complete_requests_is_answered_after_them() -> None:
    proto = make()
    events = proto.receive_data(NEXT + b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    held = events.pop()  # the server answers it after the responses owed
    assert isinstance(held, PeerError) and held.error.status == 400
    error = held.error
    assert summarize(events) == NEXT_EVENTS
    assert not proto.closing
    out = respond(proto, b"first")
    assert b"Connection: close" not in out  # a 400 follows: the client reads on
    assert out.endswith(b"first")
    out = proto.error_response(error)
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in out
    assert proto.closing and proto.receive_data(NEXT) == []


WEBSOCKET = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


def test_an_upgrade_to_another_protocol_is_ignored() -> None:
    proto = make()
    upgrade = WEBSOCKET.replace(b"websocket", b"h2c")
    events = proto.receive_data(upgrade + NEXT)
    assert summarize(events) == [("request", "GET", "/ws"), ("complete",), *NEXT_EVENTS]
    assert environ_of(events)["HTTP_UPGRADE"] == "h2c"
    assert proto.take_over(1) is None  # not a WebSocket handshake
    head = upgrade.replace(b"\r\n\r\n", b"\r\nContent-Length: 2\r\n\r\nab")
    assert refused(head, "whole") == 400


@pytest.mark.parametrize("way", ["whole", "bytewise"])
def test_a_websocket_handshake_ends_http_and_hands_over_what_follows(way: str) -> None:
    proto, events = receive(WEBSOCKET + b"\x81\x85frame", way)
    assert summarize(events) == [("request", "GET", "/ws"), ("complete",)]
    assert environ_of(events)["HTTP_UPGRADE"] == "websocket"
    assert proto.closing is False  # (its answer is owed)
    tail = proto.take_over(1)
    assert tail == b"\x81\x85frame"  # (fed with the head, or after it)
    assert proto.closing and proto.keeps_connection(1) is False
    assert respond(proto) == b""  # HTTP is over on this connection


def test_a_websocket_handshake_answered_in_http_closes_the_connection() -> None:
    proto = make()
    events = proto.receive_data(WEBSOCKET + NEXT)
    assert summarize(events) == [("request", "GET", "/ws"), ("complete",)]  # NEXT unread
    out = proto.start_response(1, "403 Forbidden", TEXT, b"", end=True)
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"Connection: close" in out
    assert proto.closing
    assert proto.take_over(1) is None


# -- 100-continue --------------------------------------------------------------------
@pytest.mark.parametrize("way", ["whole", "bytewise"])
def test_expect_100_continue(way: str) -> None:
    head = POST + b"Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n"
    proto, events = receive(head, way)
    assert summarize(events) == [("request", "POST", "/")]
    assert proto.data_to_send() == CONTINUE
    assert proto.data_to_send() == b""
    assert summarize(proto.receive_data(b"abc")) == [("body", b"abc"), ("complete",)]


@pytest.mark.parametrize(
    "head",
    [
        POST + b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
    ],
)
def test_no_100_continue_without_body_or_in_http10(head: bytes) -> None:
    proto = make()
    proto.receive_data(head)
    assert proto.data_to_send() == b""


def test_100_continue_over_max_body_is_413() -> None:
    proto = make(Limits(max_body=2))
    head = POST + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    with pytest.raises(RemoteProtocolError) as info:
        proto.receive_data(head)
    assert info.value.status == 413
    assert proto.data_to_send() == b""


def test_100_continue_waits_for_the_response_before() -> None:
    proto = make()
    head = POST + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    proto.receive_data(NEXT + head)
    assert proto.data_to_send() == b""  # would land inside the first response
    proto.start_response(1, "200 OK", TEXT)
    assert proto.send_body(1, b"x") == b"1\r\nx\r\n"
    assert proto.end_response(1) == b"0\r\n\r\n" + CONTINUE


# -- limits and malformed requests -------------------------------------------------------
def host_and_fill(size: int) -> bytes:
    """Header fields worth ``size`` canonical bytes (name, ": ", value, CRLF)."""
    return b"Host: x\r\nX-Fill: " + b"a" * (size - 9 - 10) + b"\r\n"


LIMIT_CASES = {
    # name: (limits, request at the limit, request one past it, status)
    "body-length": (
        Limits(max_body=10),
        POST + b"Content-Length: 10\r\n\r\n" + b"a" * 10,
        POST + b"Content-Length: 11\r\n\r\n" + b"a" * 11,
        413,
    ),
    "body-chunked": (
        Limits(max_body=10),
        CHUNKED + b"\r\n6\r\naaaaaa\r\n4\r\naaaa\r\n0\r\n\r\n",
        CHUNKED + b"\r\n6\r\naaaaaa\r\n5\r\naaaaa\r\n0\r\n\r\n",
        413,
    ),
    "target": (
        Limits(max_request_line=50),
        b"GET /" + b"a" * 49 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /" + b"a" * 50 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
        414,
    ),
    "header-count": (
        Limits(max_header_count=5),
        b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(4)) + b"\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(5)) + b"\r\n",
        431,
    ),
    "header-bytes": (
        Limits(max_header_bytes=200),
        b"GET / HTTP/1.1\r\n" + host_and_fill(200) + b"\r\n",
        b"GET / HTTP/1.1\r\n" + host_and_fill(201) + b"\r\n",
        431,
    ),
    "trailer-count": (
        Limits(max_header_count=2),
        CHUNKED + b"\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
        CHUNKED + b"\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
        431,
    ),
}


@pytest.mark.parametrize("case", LIMIT_CASES)
@pytest.mark.parametrize("way", WAYS)
def test_limits_at_and_one_past(case: str, way: str) -> None:
    limits, at_limit, past, status = LIMIT_CASES[case]
    _, events = receive(at_limit, way, make(limits))
    assert summarize(events)[-1] == ("complete",)
    assert refused(past, way, limits) == status


def test_an_endless_header_line_is_cut_off() -> None:
    proto = make(Limits(max_request_line=100, max_header_bytes=100))
    proto.receive_data(b"GET / HTTP/1.1\r\nX: ")
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(2000):
            proto.receive_data(b"a")
    assert info.value.status == 431


MALFORMED = {
    "length-and-chunked": POST
    + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunked-and-length": CHUNKED + b"Content-Length: 3\r\n\r\n0\r\n\r\n",
    "two-lengths": POST + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "length-list": POST + b"Content-Length: 1, 1\r\n\r\na",
    "negative-length": POST + b"Content-Length: -1\r\n\r\n",
    "bad-chunk-size": CHUNKED + b"\r\nzz\r\n",
    "chunk-overflow": CHUNKED + b"\r\nfffffffffffffffffff\r\n",
    "chunk-too-long": CHUNKED + b"\r\n1\r\nab\r\n0\r\n\r\n",
    "gzip-only": POST + b"Transfer-Encoding: gzip\r\n\r\nabc",
    "chunked-in-http10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: h\n\n",
    "http-0.9": b"GET /\r\n\r\n",
    "tls": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    "control-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
    "host-with-space": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "host-with-path": b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
    "host-with-userinfo": b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
    "host-with-query": b"GET / HTTP/1.1\r\nHost: a?b\r\n\r\n",
    "host-half-bracketed": b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
    "host-port-not-digits": b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n",
    "host-two-ports": b"GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n",
    "host-in-http10-checked-too": b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n",
    "asterisk-not-options": b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
    "asterisk-with-query": b"OPTIONS *?a HTTP/1.1\r\nHost: h\r\n\r\n",
    "asterisk-twice": b"GET ** HTTP/1.1\r\nHost: h\r\n\r\n",
    "absolute-form-bad-port": b"GET http://a:b/x HTTP/1.1\r\nHost: h\r\n\r\n",
    "absolute-form-userinfo-bad-port": b"GET http://u@e:8o/x HTTP/1.1\r\nHost: h\r\n\r\n",
    "absolute-form-list": b"GET http://a,b/x HTTP/1.1\r\nHost: h\r\n\r\n",
    "absolute-form-half-bracket": b"GET http://[x/x HTTP/1.1\r\nHost: h\r\n\r\n",
    "two-content-types": POST + b"Content-Type: a/b\r\nContent-Type: c/d\r\n\r\n",
}


@pytest.mark.parametrize("case", MALFORMED)
@pytest.mark.parametrize("way", WAYS)
def test_malformed_is_400(case: str, way: str) -> None:
    assert refused(MALFORMED[case], way) == 400


@pytest.mark.parametrize(
    "host",
    [
        b"",
        b"h",
        b"a.example:8080",
        b"a.example:",
        b"127.0.0.1:80",
        b"[::1]",
        b"[::1]:443",
        b"xn--bcher-kva.example",
        b"a_b-c~d.example",
        b"%65x.example",
        "b\u00fccher.example".encode(),  # raw UTF-8, as nginx passes it on
        b"[unix:/run/app.sock]",  # h2o's, to a unix socket without preserve-host
    ],
)
def test_hosts_a_front_sends_are_taken(host: bytes) -> None:
    proto = HTTPServerProtocol()
    events = proto.receive_data(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert isinstance(events[0], RequestReceived)
    assert events[0].environ["HTTP_HOST"] == host.decode("latin-1")


def test_options_asterisk_is_taken() -> None:
    events = HTTPServerProtocol().receive_data(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(events[0], RequestReceived)
    assert events[0].environ["REQUEST_URI"] == "*"


def test_other_statuses() -> None:
    gzip = POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    assert refused(gzip, "whole") == 501
    assert refused(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", "whole") == 505


def test_error_response() -> None:
    proto = make()
    with pytest.raises(RemoteProtocolError) as info:
        proto.receive_data(MALFORMED["two-lengths"])
    assert proto.error_response(info.value) == (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 12\r\nConnection: close\r\nDate: " + DATE + b"\r\n"
        b"Server: dumbwaiter\r\n\r\nBad Request\n"
    )
    assert proto.closing
    assert (
        make()
        .error_response(RemoteProtocolError("x", 431))
        .startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    )


# -- end of input ----------------------------------------------------------------------
def test_half_close_after_a_request_still_gets_the_response() -> None:
    proto = make()
    proto.receive_data(NEXT)
    assert proto.receive_data(b"") == []
    assert not proto.closing
    assert b"Connection: close\r\n" in respond(proto)
    assert proto.closing


def test_half_close_mid_request() -> None:
    proto = make()
    assert summarize(proto.receive_data(POST + b"Content-Length: 9\r\n\r\nab"))
    assert not proto.idle
    assert proto.receive_data(b"") == []
    assert proto.closing and proto.idle


def test_idle() -> None:
    proto = make()
    assert proto.idle
    proto.receive_data(b"GET / HT")
    assert not proto.idle
    proto.receive_data(b"TP/1.1\r\nHost: h\r\n\r\n")
    assert not proto.idle  # a response is owed
    respond(proto)
    assert proto.idle and not proto.closing


# -- responses ---------------------------------------------------------------------------
class Parsed:
    def __init__(self, events: list[Any]) -> None:
        response = events[0]
        assert isinstance(response, Response)
        self.status, self.headers = response.status, response.headers
        self.body = b"".join(e.data for e in events if isinstance(e, Data))
        self.complete = any(isinstance(e, EndOfMessage) for e in events)

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n.lower() == name]
        assert len(values) <= 1
        return values[0] if values else None


def parse_response(data: bytes, method: str = "GET", eof: bool = False) -> Parsed:
    client = HTTPClientProtocol()
    client.send_request(method, "/", [])
    events = client.receive_data(data)
    if eof:
        events += client.receive_data(b"")
    return Parsed(events)


def answered(request: bytes) -> HTTPServerProtocol:
    proto = make()
    assert summarize(proto.receive_data(request))[-1] == ("complete",)
    return proto


GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"
GET10 = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"


def test_small_response_is_one_bytes_object() -> None:
    out = answered(GET).start_response(1, "200 OK", TEXT, b"Hello world\n", end=True)
    assert out == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
        b"Date: " + DATE + b"\r\nServer: dumbwaiter\r\n\r\nHello world\n"
    )


def test_hop_by_hop_dropped_and_app_date_server_kept() -> None:
    headers = [
        ("Connection", "keep-alive"),
        ("Transfer-Encoding", "chunked"),
        ("Keep-Alive", "timeout=5"),
        ("Upgrade", "h2c"),
        ("TE", "trailers"),
        ("Trailer", "X"),
        ("Proxy-Connection", "close"),
        ("Date", "Mon, 01 Jan 2001 00:00:00 GMT"),
        ("server", "app"),
        ("Set-Cookie", "a=1"),
    ]
    proto = answered(GET)
    response = parse_response(proto.start_response(1, "200 OK", headers, b"x", end=True))
    assert response.headers == [
        (b"Date", b"Mon, 01 Jan 2001 00:00:00 GMT"),
        (b"server", b"app"),
        (b"Set-Cookie", b"a=1"),
        (b"Content-Length", b"1"),
    ]
    assert not proto.closing


def test_streaming_is_chunked_in_http11() -> None:
    proto = answered(GET)
    out = proto.start_response(1, "200 OK", TEXT, b"first")
    assert b"Transfer-Encoding: chunked\r\n" in out and out.endswith(b"\r\n\r\n5\r\nfirst\r\n")
    assert not proto.raw_body_ok(1)
    assert proto.send_body(1, b"0123456789abcdef") == b"10\r\n0123456789abcdef\r\n"
    assert proto.send_body(1, b"") == b""  # never a premature last chunk
    assert proto.end_response(1) == b"0\r\n\r\n"
    assert proto.idle and not proto.closing


def test_streaming_with_length_is_raw() -> None:
    proto = answered(GET)
    out = proto.start_response(1, "200 OK", [("Content-Length", "6")])
    assert b"Content-Length: 6\r\n" in out and b"chunked" not in out
    assert proto.raw_body_ok(1)
    assert proto.send_body(1, b"abc") == b"abc"
    assert proto.end_response(1) == b""
    assert not proto.raw_body_ok(1)


def test_streaming_in_http10_is_close_delimited() -> None:
    proto = answered(GET10)
    out = proto.start_response(1, "200 OK", TEXT, b"abc") + proto.send_body(1, b"def")
    assert proto.raw_body_ok(1)
    out += proto.end_response(1)
    response = parse_response(out, eof=True)
    assert response.body == b"abcdef" and response.complete
    assert response.header(b"connection") == b"close"
    assert proto.closing


def test_http10_keep_alive_response_says_so() -> None:
    proto = answered(GET10)
    assert parse_response(respond(proto)).header(b"connection") == b"keep-alive"
    assert not proto.closing


def test_head_response_has_no_body() -> None:
    proto = answered(HEAD + HEAD + HEAD)
    out = proto.start_response(1, "200 OK", [("Content-Length", "12")], b"Hello world\n", end=True)
    assert out.endswith(b"\r\n\r\n") and b"Content-Length: 12\r\n" in out
    out = proto.start_response(1, "200 OK", TEXT, b"Hello world\n", end=True)
    assert out.endswith(b"\r\n\r\n") and b"Content-Length: 12\r\n" in out
    out = proto.start_response(1, "200 OK", TEXT, b"Hello")
    assert not proto.raw_body_ok(1)
    assert proto.send_body(1, b"more") == b""
    out += proto.end_response(1)
    assert out.endswith(b"\r\n\r\n") and b"chunked" not in out and b"Content-Length" not in out
    assert proto.idle and not proto.closing


@pytest.mark.parametrize(
    ("status", "length"), [("204 No Content", None), ("304 Not Modified", b"5")]
)
def test_no_body_statuses(status: str, length: bytes | None) -> None:
    proto = answered(GET)
    out = proto.start_response(1, status, [("Content-Length", "5")], b"hello", end=True)
    assert out.endswith(b"\r\n\r\n")
    assert parse_response(out).header(b"content-length") == length
    assert not proto.closing


def test_reject_keeps_a_fully_read_connection() -> None:
    proto = answered(GET + GET)
    out = proto.reject(1, "503 Service Unavailable", [("Retry-After", "1")], b"busy\n")
    response = parse_response(out)
    assert (response.status, response.body) == (503, b"busy\n")
    assert response.header(b"retry-after") == b"1" and response.header(b"connection") is None
    assert not proto.closing


def test_response_before_the_body_is_read_closes() -> None:
    proto = make()
    proto.receive_data(POST + b"Content-Length: 100\r\n\r\nab")
    out = proto.reject(1, "413 Content Too Large", TEXT, b"no\n")
    assert b"Connection: close\r\n" in out
    assert proto.closing and proto.receive_data(b"cd") == []


def test_abort_response() -> None:
    proto = answered(GET + GET)
    proto.start_response(1, "200 OK", [("Content-Length", "10")], b"abc")
    assert proto.abort_response(1) == b""
    assert proto.closing
    # The connection layer may still finish the queued request: nothing goes out.
    assert respond(proto) == b"" and proto.end_response(1) == b""


def test_misuse_is_local_protocol_error() -> None:
    proto = make()
    with pytest.raises(LocalProtocolError):
        respond(proto)
    with pytest.raises(LocalProtocolError):
        proto.send_body(1, b"x")
    proto.receive_data(GET)
    with pytest.raises(LocalProtocolError):
        proto.end_response(1)
    with pytest.raises(LocalProtocolError):
        proto.start_response(2, "200 OK", [])
    proto.start_response(1, "200 OK", [])
    with pytest.raises(LocalProtocolError):
        proto.start_response(1, "200 OK", [])


def test_default_date_is_an_imf_fixdate() -> None:
    proto = HTTPServerProtocol(server=b"")
    proto.receive_data(GET)
    response = parse_response(respond(proto))
    date = response.header(b"date")
    assert date is not None and email.utils.parsedate_to_datetime(date.decode()).tzinfo
    assert response.header(b"server") is None


# -- the client ---------------------------------------------------------------------------
def test_client_framings() -> None:
    client = HTTPClientProtocol()
    request = client.send_request("POST", "/x", [("Host", "h")], b"abc")
    assert request == b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    client.send_request("HEAD", "/", [])
    client.send_request("GET", "/", [])
    client.send_request("GET", "/", [])
    events = client.receive_data(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"  # HEAD: no body follows
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.0 200 OK\r\n\r\nuntil"
    )
    events += client.receive_data(b" close") + client.receive_data(b"")
    assert events == [
        Response(100, b"Continue", []),
        EndOfMessage(),
        Response(200, b"OK", [(b"Transfer-Encoding", b"chunked")]),
        Data(b"abc"),
        EndOfMessage(),
        Response(200, b"OK", [(b"Content-Length", b"9")]),
        EndOfMessage(),
        Response(204, b"No Content", []),
        EndOfMessage(),
        Response(200, b"OK", []),
        Data(b"until"),
        Data(b" close"),
        EndOfMessage(),
        ConnectionClosed(),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",  # then EOF
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
    ],
)
def test_client_refuses_bad_responses(data: bytes) -> None:
    client = HTTPClientProtocol()
    client.send_request("GET", "/", [])
    with pytest.raises(RemoteProtocolError):
        client.receive_data(data)
        client.receive_data(b"")


# -- properties ------------------------------------------------------------------------------
TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
SPECIAL = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}
VALUE_CHARS = st.characters(codec="latin-1", exclude_categories=["Cc"], exclude_characters="\x7f")
UNRESERVED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


def expected_key(name: str) -> str | None:
    key = name.upper().replace("-", "_")
    if "_" in name or key == "PROXY":
        return None
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


@st.composite
def requests(draw: st.DrawFn, last: bool = True) -> tuple[bytes, list[Any], bool]:
    """A valid request, the summary and environ it must give, and whether the
    connection stays open after it."""
    method = draw(st.sampled_from(METHODS))
    http10 = draw(st.booleans())
    segments = draw(st.lists(st.binary(max_size=6), min_size=1, max_size=4))
    upper = draw(st.booleans())
    encoded = b"/".join(
        b"".join(
            bytes([c]) if c in UNRESERVED else (b"%%%02X" if upper else b"%%%02x") % c for c in seg
        )
        for seg in segments
    )
    query = draw(st.text(string.ascii_letters + string.digits + "=&+%-._~", max_size=12))
    target = b"/" + encoded + (b"?" + query.encode() if query else b"")
    environ: dict[str, str] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": (b"/" + b"/".join(segments)).decode("latin-1"),
        "QUERY_STRING": query,
        "REQUEST_URI": target.decode("latin-1"),
        "SERVER_PROTOCOL": "HTTP/1.0" if http10 else "HTTP/1.1",
        "HTTP_HOST": "example.org",
    }
    lines = [b"%s %s HTTP/1.%d\r\nHost: example.org\r\n" % (method.encode(), target, not http10)]
    names = st.text(TOKEN_CHARS, min_size=1, max_size=10).filter(lambda n: n.lower() not in SPECIAL)
    values = st.text(VALUE_CHARS, max_size=12).map(lambda v: v.strip(" \t"))
    for name, value in draw(st.lists(st.tuples(names, values), max_size=6)):
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        key = expected_key(name)
        if key is None:
            continue
        separator = "; " if key == "HTTP_COOKIE" else ", "
        environ[key] = environ[key] + separator + value if key in environ else value
    keep_alive = draw(st.booleans()) or not last
    if http10 and keep_alive:
        lines.append(b"Connection: keep-alive\r\n")
        environ["HTTP_CONNECTION"] = "keep-alive"
    elif not http10 and not keep_alive:
        lines.append(b"Connection: close\r\n")
        environ["HTTP_CONNECTION"] = "close"
    body = draw(st.binary(max_size=40))
    summary: list[Any] = [("request", method, environ["PATH_INFO"])]
    if body and not http10 and draw(st.booleans()):
        lines.append(b"Transfer-Encoding: chunked\r\n\r\n")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        for start, end in itertools.pairwise([0, *cuts, len(body)]):
            if end > start:
                ext = draw(st.sampled_from([b"", b";a=b", b';n="v"']))
                lines.append(b"%x%s\r\n%s\r\n" % (end - start, ext, body[start:end]))
        lines.append(b"0\r\n" + draw(st.sampled_from([b"", b"T: x\r\n"])) + b"\r\n")
    else:
        if body:
            lines.append(b"Content-Length: %d\r\n" % len(body))
            environ["CONTENT_LENGTH"] = str(len(body))
        lines.append(b"\r\n" + body)
    if body:
        summary.append(("body", body))
    summary.append(("complete",))
    return b"".join(lines), [summary, environ], keep_alive


def feed_in_pieces(proto: HTTPServerProtocol, data: bytes, cuts: list[int]) -> list[Event]:
    events: list[Event] = []
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        events += proto.receive_data(data[start:end])
    return events


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(requests(last=False), min_size=0, max_size=3),
    requests(),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_random_pipelines_give_their_events(
    first: list[tuple[bytes, list[Any], bool]],
    final: tuple[bytes, list[Any], bool],
    cuts: list[int],
) -> None:
    batch = [*first, final]
    proto = make()
    events = feed_in_pieces(proto, b"".join(data for data, _, _ in batch), cuts)
    assert summarize(events) == [e for _, (summary, _), _ in batch for e in summary]
    received = [e.environ for e in events if isinstance(e, RequestReceived)]
    assert received == [environ for _, (_, environ), _ in batch]
    for _ in batch:
        respond(proto)
    assert proto.closing is not final[2]


@settings(max_examples=500)
@given(st.binary(max_size=200), st.lists(st.integers(0, 1000), max_size=5))
def test_random_bytes_give_events_or_remote_errors(data: bytes, cuts: list[int]) -> None:
    proto = make(Limits(max_body=50, max_request_line=40, max_header_count=5))
    try:
        feed_in_pieces(proto, data, cuts)
    except RemoteProtocolError:
        assert proto.error_response(RemoteProtocolError("x")).startswith(b"HTTP/1.1 400")


@settings(max_examples=300)
@given(requests(), st.lists(st.tuples(st.integers(0, 500), st.binary(max_size=3)), max_size=4))
def test_mutated_requests_give_events_or_remote_errors(
    request: tuple[bytes, list[Any], bool], mutations: list[tuple[int, bytes]]
) -> None:
    data = bytearray(request[0])
    for position, replacement in mutations:
        position %= len(data) + 1
        data[position : position + 1] = replacement
    proto = make(Limits(max_body=30, max_header_count=6))
    try:
        proto.receive_data(bytes(data))
        proto.receive_data(b"")
    except RemoteProtocolError as exc:
        assert exc.status in (400, 413, 414, 431, 501, 505)


HEADER_NAMES = st.text(string.ascii_letters + "-", min_size=1, max_size=10).filter(
    lambda n: (
        n.lower()
        not in ("connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade")
        and n.lower() not in ("content-length", "date", "server", "proxy-connection")
    )
)


@settings(max_examples=300)
@given(
    status=st.sampled_from(
        [
            "200 OK",
            "201 Created",
            "204 No Content",
            "304 Not Modified",
            "404 Not Found",
            "418 I'm a teapot",
            "299 Custom",
        ]
    ),
    headers=st.lists(st.tuples(HEADER_NAMES, st.text(string.printable.strip(), max_size=10))),
    chunks=st.lists(st.binary(min_size=1, max_size=20), max_size=4),
    mode=st.sampled_from(["whole", "stream", "length"]),
    method=st.sampled_from(["GET", "HEAD"]),
    http10=st.booleans(),
)
def test_responses_round_trip_through_the_client(
    status: str,
    headers: list[tuple[str, str]],
    chunks: list[bytes],
    mode: str,
    method: str,
    http10: bool,
) -> None:
    proto = make()
    client = HTTPClientProtocol()
    client.send_request(method, "/", [])
    version = b"HTTP/1.0\r\nConnection: keep-alive" if http10 else b"HTTP/1.1\r\nHost: h"
    proto.receive_data(method.encode() + b" / " + version + b"\r\n\r\n")
    body = b"".join(chunks)
    if mode == "whole":
        out = proto.start_response(1, status, headers, body, end=True)
    else:
        extra = [("Content-Length", str(len(body)))] if mode == "length" else []
        out = proto.start_response(1, status, headers + extra)
        out += b"".join(proto.send_body(1, chunk) for chunk in chunks)
        out += proto.end_response(1)
    events = client.receive_data(out)
    if proto.closing:
        events += client.receive_data(b"")
    response = Parsed(events)
    assert response.complete
    assert response.status == int(status[:3])
    sent = [(n.encode(), v.encode()) for n, v in headers]
    assert [h for h in response.headers if h in sent] == sent
    no_body = method == "HEAD" or status[:3] in ("204", "304")
    assert response.body == (b"" if no_body else body)
    assert proto.closing is (http10 and mode == "stream" and not no_body)


@pytest.mark.parametrize(
    ("method", "status"),
    [(b"FOO", 501), (b"BREW", 501), (b"foo", 501), (b"BAD(", 400), (b"B\x01D", 400)],
)
def test_an_unknown_method_that_is_a_token_is_not_implemented(method: bytes, status: int) -> None:
    """RFC 9110 9.1: a method the server does not know gets 501, a request
    line that is not one gets 400."""
    assert refused(method + b" / HTTP/1.1\r\nHost: x\r\n\r\n", "whole") == status
