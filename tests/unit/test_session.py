"""The session layer (``server/session.py``), driven without any I/O.

A :class:`~dumbwaiter.server.session.Session` is given the real sans-IO
protocol objects (FastCGI, HTTP, SCGI, uwsgi), a recording :class:`FakeWire`
in place of a driver, and a fake clock in its ``SessionSettings``: no
sockets, no threads, no sleeping.  Each test feeds what a front server or a
client would send and reads what the session asked of its wire, decoding the
bytes with the client-side helpers.

The driver's exchange: ``ExchangeBase`` is compiled in the mypyc build, a
native class that Python code cannot subclass ("interpreted classes cannot
inherit from compiled"), so the wire hands out plain ``ExchangeBase`` objects
and :class:`App` plays the driver's part for one of them: its
start/write/end/abort make the session's ``send_head``/``send_body``/
``send_end``/``send_abort`` calls synchronously, as a driver does on the
thread that owns the session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from dumbwaiter.protocols import Role, ServerProtocol, scgi, uwsgi
from dumbwaiter.protocols.fastcgi import FastCGIServerProtocol
from dumbwaiter.protocols.fastcgi_client import (
    EndRequest,
    FastCGIClientProtocol,
    GetValuesResult,
    Stdout,
    parse_cgi_response,
)
from dumbwaiter.protocols.fastcgi_records import OVERLOADED
from dumbwaiter.protocols.http import CONTINUE, HTTPServerProtocol
from dumbwaiter.protocols.http_client import Data, EndOfMessage, HTTPClientProtocol, Response
from dumbwaiter.protocols.scgi import SCGIServerProtocol
from dumbwaiter.protocols.uwsgi import UwsgiServerProtocol
from dumbwaiter.request import Request
from dumbwaiter.server.deadlines import DRAIN_GRACE, LINGER_SECONDS, SessionSettings
from dumbwaiter.server.exchange import ExchangeBase
from dumbwaiter.server.session import BUSY_BODY, TIMEOUT_BODY, Session

START = 1000.0
#: Distinct values, so that a deadline tells which rule set it.
KEEPALIVE, READ, HEADER_CAP, WRITE = 5.0, 3.0, 10.0, 4.0
PEER = {"REMOTE_ADDR": "192.0.2.1", "REMOTE_PORT": "5555"}
PEER_NAME = "192.0.2.1:5555"
TEXT = [("Content-Type", "text/plain")]
DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "QUERY_STRING": "", "SERVER_NAME": "t"}

PROTOCOLS: dict[str, Callable[[], ServerProtocol]] = {
    "fastcgi": FastCGIServerProtocol,
    "http": lambda: HTTPServerProtocol(date=lambda: DATE),
    "scgi": SCGIServerProtocol,
    "uwsgi": UwsgiServerProtocol,
}


# -- the fakes ------------------------------------------------------------------------------------
class Clock:
    """``settings.clock``: time moves only when a test says."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeWire:
    """The session's wire, recording each call; ``dispatch`` hands out an
    exchange, or None while ``busy`` (no thread would take the request)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.out = bytearray()
        self.busy = False
        self.exchanges: list[ExchangeBase] = []

    def write(self, data: bytes) -> None:
        assert data, "the session writes nothing empty"
        self.calls.append(("write", bytes(data)))
        self.out += data

    def pause_reading(self) -> None:
        self.calls.append(("pause_reading",))

    def resume_reading(self) -> None:
        self.calls.append(("resume_reading",))

    def close(self) -> None:
        self.calls.append(("close",))

    def linger(self) -> None:
        self.calls.append(("linger",))

    def reset(self) -> None:
        self.calls.append(("reset",))

    def dispatch(self, request: Request) -> ExchangeBase | None:
        self.calls.append(("dispatch", request.environ.get("PATH_INFO")))
        if self.busy:
            return None
        exchange = ExchangeBase(request, dict(PEER), "test")
        self.exchanges.append(exchange)
        return exchange

    def kinds(self) -> list[str]:
        return [call[0] for call in self.calls]

    def count(self, kind: str) -> int:
        return self.kinds().count(kind)


class Recorder:
    """The ``Reports`` of the sessions under test: records each call, and
    nothing else (what ``Reports`` promises is the session's to keep)."""

    def __init__(self) -> None:
        self.calls: list[tuple[ExchangeBase, str, int, str]] = []

    def report(self, exchange: ExchangeBase, gateway: str) -> None:
        self.calls.append((exchange, exchange.status, exchange.sent, gateway))

    @property
    def statuses(self) -> list[str]:
        return [status for _, status, _, _ in self.calls]


class App:
    """The driver's part of one exchange (see the module doc): the
    application's calls, made on the session at once."""

    def __init__(self, session: Session, exchange: ExchangeBase) -> None:
        self.session = session
        self.exchange = exchange

    def start(
        self,
        status: str = "200 OK",
        headers: list[tuple[str, str]] = TEXT,
        body: bytes = b"",
        end: bool = False,
    ) -> None:
        self.session.send_head(self.exchange, status, list(headers), body, end)

    def write(self, data: bytes) -> bool:
        self.session.send_body(self.exchange, data)
        return not self.exchange.cancelled

    def end(self) -> None:
        self.session.send_end(self.exchange)

    def abort(self) -> None:
        self.session.send_abort(self.exchange)


class Rig:
    """One session over the real protocol ``kind``, with its fakes."""

    def __init__(self, kind: str, *, min_body_rate: int = 0) -> None:
        self.kind = kind
        self.clock = Clock()
        self.wire = FakeWire()
        self.reports = Recorder()
        settings = SessionSettings(
            keepalive_timeout=KEEPALIVE,
            read_timeout=READ,
            header_timeout=HEADER_CAP,
            min_body_rate=min_body_rate,
            write_timeout=WRITE,
            spool_threshold=1 << 20,
            clock=self.clock,
        )
        self.session = Session(
            PROTOCOLS[kind](),
            self.wire,
            listener=f"{kind} test",
            gateway=kind,
            peer=dict(PEER),
            settings=settings,
            reporter=self.reports,
        )
        self.session.arm(self.clock.now)  # as a driver does with a new connection

    def feed(self, data: bytes, piece: int = 0) -> None:
        """``data`` as one read, or in reads of ``piece`` bytes."""
        size = piece or len(data)
        for start in range(0, len(data), size):
            self.session.receive(data[start : start + size])

    def app(self, index: int = -1) -> App:
        return App(self.session, self.wire.exchanges[index])


# -- what front servers and clients send, and how their answers decode ----------------------------
def fcgi_request(
    client: FastCGIClientProtocol | None = None,
    params: dict[str, str] = ENVIRON,
    body: bytes = b"",
    *,
    keep_conn: bool = True,
    stdin_end: bool = True,
) -> tuple[int, bytes]:
    client = client or FastCGIClientProtocol()
    rid = client.begin_request(Role.RESPONDER, keep_conn=keep_conn)
    parts = [client.send_begin(rid), client.send_params(rid, params), client.send_params(rid, {})]
    if body:
        parts.append(client.send_stdin(rid, body))
    if stdin_end:
        parts.append(client.send_stdin(rid, b""))
    return rid, b"".join(parts)


def fcgi_answers(data: bytes) -> tuple[dict[int, bytes], list[EndRequest]]:
    """Each request's STDOUT, and the END_REQUESTs in order."""
    stdout: dict[int, bytes] = {}
    ends = []
    for event in FastCGIClientProtocol().receive_data(bytes(data)):
        if isinstance(event, Stdout):
            stdout[event.request_id] = stdout.get(event.request_id, b"") + event.data
        elif isinstance(event, EndRequest):
            ends.append(event)
    return stdout, ends


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: example.org", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def http_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The complete responses in ``data``: (status, headers lowercased, body)."""
    client = HTTPClientProtocol()
    responses: list[tuple[int, dict[str, str], bytes]] = []
    head: Response | None = None
    body = b""
    for event in client.receive_data(bytes(data)):
        if isinstance(event, Response):
            head, body = event, b""
        elif isinstance(event, Data):
            body += event.data
        elif isinstance(event, EndOfMessage):
            assert head is not None
            headers = {n.decode().lower(): v.decode() for n, v in head.headers}
            responses.append((head.status, headers, body))
    return responses


def request_for(kind: str, path: str = "/x", body: bytes = b"") -> bytes:
    environ = {**ENVIRON, "PATH_INFO": path}
    if kind == "fastcgi":
        return fcgi_request(params=environ, body=body)[1]
    if kind == "scgi":
        return scgi.encode_request(environ, body)
    if kind == "uwsgi":
        return uwsgi.encode_request(environ, body)
    assert not body
    return get(path)


def answer_of(kind: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """The one response in ``data``, whatever the protocol."""
    if kind in ("fastcgi", "scgi"):
        if kind == "fastcgi":
            stdout, _ = fcgi_answers(data)
            (data,) = stdout.values()
        status, _, headers, body = parse_cgi_response(bytes(data))
        return status, {name.lower(): value for name, value in headers}, body
    if kind == "uwsgi":  # an HTTP head, and a body delimited by the close
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines)
        return int(first.split()[1]), {k.lower(): v for k, v in fields.items()}, body
    (response,) = http_responses(data)
    return response


def dumbwaiter_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "dumbwaiter"]


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dumbwaiter")


# -- a request, dispatched and answered -----------------------------------------------------------
@pytest.mark.parametrize("piece", [0, 1, 7], ids=["whole", "bytewise", "sevens"])
def test_a_fastcgi_request_is_dispatched_answered_and_the_connection_kept(piece: int) -> None:
    rig = Rig("fastcgi")
    rid, data = fcgi_request(body=b"abc", keep_conn=True)
    rig.feed(data, piece)
    assert rig.wire.calls == [("dispatch", "/x")]
    request = rig.wire.exchanges[0].request
    assert request.environ["REQUEST_METHOD"] == "GET"
    assert request.length == 3 and request.input.read() == b"abc"
    assert rig.session.deadline == 0.0  # the app's time is not the client's

    rig.clock.advance(2.0)
    rig.app().start("200 OK", TEXT, b"hello", end=True)
    stdout, ends = fcgi_answers(rig.wire.out)
    assert stdout == {rid: b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"}
    assert ends == [EndRequest(rid, 0, 0)]
    assert rig.wire.count("close") == 0
    assert rig.session.deadline == START + 2.0 + KEEPALIVE  # kept alive
    assert rig.reports.statuses == ["200 OK"]
    assert rig.reports.calls[0][2:] == (5, "fastcgi")


def test_an_http_request_is_answered_and_kept_alive() -> None:
    rig = Rig("http")
    rig.feed(get("/hello"))
    app = rig.app()
    app.start("200 OK", TEXT, b"one ", end=False)
    assert app.write(b"two")
    app.end()
    ((status, headers, body),) = http_responses(rig.wire.out)
    assert (status, body) == (200, b"one two")
    assert headers["transfer-encoding"] == "chunked" and "connection" not in headers
    assert rig.wire.count("close") == 0
    assert rig.session.deadline == START + KEEPALIVE
    assert rig.reports.statuses == ["200 OK"]


@pytest.mark.parametrize("kind", ["scgi", "uwsgi", "fastcgi-once", "http-close"])
def test_a_one_request_connection_closes_after_its_response(kind: str) -> None:
    protocol = kind.partition("-")[0]
    rig = Rig(protocol)
    if kind == "fastcgi-once":
        data = fcgi_request(keep_conn=False)[1]
    elif kind == "http-close":
        data = get("/x", "Connection: close")
    else:
        data = request_for(protocol)
    rig.feed(data)
    app = rig.app()
    app.start("200 OK", TEXT, b"part one, ", end=False)
    assert rig.wire.count("close") == 0
    app.write(b"part two")
    assert rig.wire.count("close") == 0
    app.end()
    assert rig.wire.kinds()[-1] == "close" and rig.wire.count("close") == 1
    status, headers, body = answer_of(protocol, rig.wire.out)
    assert (status, body) == (200, b"part one, part two")
    if protocol == "http":
        assert headers["connection"] == "close"
    assert rig.reports.statuses == ["200 OK"]


def test_replies_the_protocol_owes_are_written() -> None:
    rig = Rig("fastcgi")
    rig.feed(FastCGIClientProtocol().send_get_values(["FCGI_MPXS_CONNS"]))
    events = FastCGIClientProtocol().receive_data(bytes(rig.wire.out))
    assert events == [GetValuesResult({"FCGI_MPXS_CONNS": "1"})]

    rig = Rig("http")
    rig.feed(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert rig.wire.calls == [("write", CONTINUE)]
    rig.feed(b"abc")
    assert rig.wire.calls[-1] == ("dispatch", "/up")


# -- HTTP pipelining ------------------------------------------------------------------------------
def test_a_pipelined_request_waits_for_the_response_before_it() -> None:
    rig = Rig("http")
    rig.feed(get("/one") + get("/two"))
    # The second is complete but waits; reading stops meanwhile.
    assert rig.wire.calls == [("dispatch", "/one"), ("pause_reading",)]
    assert rig.session.deadline == 0.0

    rig.app(0).start("200 OK", TEXT, b"first", end=True)
    assert rig.wire.kinds()[2:] == ["write", "dispatch", "resume_reading"]
    assert rig.wire.calls[3] == ("dispatch", "/two")

    rig.app(1).start("200 OK", TEXT, b"second", end=True)
    assert [(s, b) for s, _, b in http_responses(rig.wire.out)] == [
        (200, b"first"),
        (200, b"second"),
    ]
    assert rig.wire.kinds()[-2:] == ["write", "resume_reading"]
    assert rig.session.deadline == START + KEEPALIVE
    assert rig.reports.statuses == ["200 OK", "200 OK"]


# -- 503: no thread will take it ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["http", "fastcgi", "scgi", "uwsgi"])
def test_a_request_no_thread_takes_is_answered_503_without_the_app(kind: str) -> None:
    rig = Rig(kind)
    rig.wire.busy = True
    rig.feed(request_for(kind))
    assert rig.wire.count("dispatch") == 1 and rig.wire.exchanges == []
    status, headers, body = answer_of(kind, rig.wire.out)
    assert (status, body) == (503, BUSY_BODY)
    assert headers["retry-after"] == "1"
    assert rig.reports.statuses == ["503 Service Unavailable"]
    assert rig.reports.calls[0][2] == len(BUSY_BODY)
    if kind == "fastcgi":
        _, ends = fcgi_answers(rig.wire.out)
        assert [end.protocol_status for end in ends] == [OVERLOADED]
    if kind in ("http", "fastcgi"):  # the request was read whole: the connection goes on
        assert rig.wire.count("close") == 0
        assert rig.session.deadline == START + KEEPALIVE
    else:
        assert rig.wire.kinds()[-1] == "close"


# -- a peer's protocol error ----------------------------------------------------------------------
ERRORS = {
    "http": (b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    "fastcgi": (b"\x02\x01\x00\x01\x00\x08\x00\x00" + bytes(8), None),  # version 2
    "scgi": (b"12x:", 400),
    "uwsgi": (b"\x05\x00\x00\x00", 400),  # modifier1 5 is not WSGI
}


@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_a_peer_error_logs_one_line_is_answered_and_the_connection_lingers(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(kind)
    garbage, status = ERRORS[kind]
    rig.feed(garbage)
    (line,) = dumbwaiter_lines(caplog)
    assert line.startswith(f"{kind} test: {PEER_NAME}: ")
    if status is None:  # FastCGI: a broken record stream gets no answer
        assert rig.wire.out == b""
    else:
        assert answer_of(kind, rig.wire.out)[0] == status
    assert rig.wire.kinds()[-1] == "linger"
    assert rig.session.lingering
    assert rig.session.deadline == START + LINGER_SECONDS
    assert rig.wire.exchanges == [] and rig.reports.calls == []

    # What the peer still sends is read and dropped.
    calls = len(rig.wire.calls)
    rig.clock.advance(1.0)
    rig.feed(request_for(kind))
    assert len(rig.wire.calls) == calls
    assert rig.session.deadline == START + LINGER_SECONDS
    assert len(dumbwaiter_lines(caplog)) == 1


def test_an_http_error_while_a_response_is_owed_is_answered_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig("http")
    rig.feed(get("/one"))
    rig.feed(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
    (line,) = dumbwaiter_lines(caplog)
    assert PEER_NAME in line
    assert rig.wire.kinds() == ["dispatch", "pause_reading"]  # nothing written yet
    assert not rig.session.lingering

    rig.app().start("200 OK", TEXT, b"first", end=True)
    responses = http_responses(rig.wire.out)
    assert [status for status, _, _ in responses] == [200, 400]
    assert responses[0][2] == b"first"
    assert rig.wire.kinds()[-1] == "linger"
    assert rig.session.lingering
    assert rig.reports.statuses == ["200 OK"]


def test_an_http_error_in_the_same_bytes_as_a_complete_request_is_answered_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same error as above, arriving in one read with the request before
    it: the same outcome (one log line, the 400 after the response, then
    the lingering close).  (The HTTP protocol holds such an error itself and
    appends its 400 to the last response: the session never hears of it.)"""
    rig = Rig("http")
    rig.feed(get("/one") + b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
    assert rig.wire.kinds()[0] == "dispatch"
    rig.app().start("200 OK", TEXT, b"first", end=True)
    responses = http_responses(rig.wire.out)
    assert [status for status, _, _ in responses] == [200, 400]
    assert len(dumbwaiter_lines(caplog)) == 1, "the peer's error is logged"
    assert rig.wire.kinds()[-1] == "linger", "and the connection lingers"


def test_a_fastcgi_error_while_a_response_is_owed_waits_for_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig("fastcgi")
    rid, data = fcgi_request(keep_conn=True)
    rig.feed(data)
    rig.feed(ERRORS["fastcgi"][0])
    assert len(dumbwaiter_lines(caplog)) == 1
    assert rig.wire.kinds() == ["dispatch", "pause_reading"]
    rig.app().start("200 OK", TEXT, b"ok", end=True)
    stdout, ends = fcgi_answers(rig.wire.out)
    assert ends == [EndRequest(rid, 0, 0)] and stdout[rid].endswith(b"ok")
    assert rig.wire.kinds()[-2:] == ["write", "linger"]


# -- FCGI_ABORT_REQUEST ---------------------------------------------------------------------------
def test_an_abort_of_a_request_being_received_is_answered_at_once() -> None:
    rig = Rig("fastcgi")
    client = FastCGIClientProtocol()
    rid, data = fcgi_request(client, body=b"part of it", stdin_end=False)
    rig.feed(data)
    assert rig.wire.calls == [] and rig.session.receiving
    rig.feed(client.send_abort(rid))
    stdout, ends = fcgi_answers(rig.wire.out)
    assert stdout == {} and ends == [EndRequest(rid, 0, 0)]
    assert rig.wire.count("dispatch") == 0
    assert not rig.session.receiving and not rig.session.running
    assert rig.reports.calls == []


def test_an_abort_of_a_request_queued_for_a_thread_cancels_it() -> None:
    """Dispatched, but no thread has taken it up yet: the front gets its
    END_REQUEST at once, and the app (should it run) sees no body and
    writes nothing."""
    rig = Rig("fastcgi")
    client = FastCGIClientProtocol()
    rid, data = fcgi_request(client, body=b"the body", keep_conn=True)
    rig.feed(data)
    exchange = rig.wire.exchanges[0]
    rig.feed(client.send_abort(rid))
    assert exchange.cancelled
    assert exchange.request.input.read() == b""
    stdout, ends = fcgi_answers(rig.wire.out)
    assert stdout == {} and ends == [EndRequest(rid, 0, 0)]
    assert not rig.session.running
    assert rig.session.deadline == START + KEEPALIVE

    written = bytes(rig.wire.out)
    rig.app().start("200 OK", TEXT, b"late", end=True)
    assert rig.wire.out == written
    assert len(rig.reports.calls) == 1 and rig.reports.calls[0][0] is exchange


def test_an_abort_of_a_running_request_ends_it_and_the_app_is_cut_off() -> None:
    rig = Rig("fastcgi")
    client = FastCGIClientProtocol()
    rid, data = fcgi_request(client, keep_conn=True)
    rig.feed(data)
    app = rig.app()
    app.start("200 OK", TEXT, b"partial", end=False)
    rig.feed(client.send_abort(rid))
    stdout, ends = fcgi_answers(rig.wire.out)
    assert stdout[rid].endswith(b"\r\n\r\npartial") and ends == [EndRequest(rid, 0, 0)]

    written = bytes(rig.wire.out)
    assert app.write(b"more") is False
    app.end()
    assert rig.wire.out == written
    assert rig.reports.statuses == ["200 OK"]
    assert rig.wire.count("close") == 0 and rig.wire.count("reset") == 0

    # The id is free again on the kept connection.
    rig.feed(fcgi_request(FastCGIClientProtocol(), keep_conn=True)[1])
    assert rig.wire.count("dispatch") == 2


# -- --timeout: expire, timeout_answer ------------------------------------------------------------
def test_expire_before_the_head_answers_504_and_goes_on() -> None:
    rig = Rig("http")
    rig.feed(get("/slow") + get("/next"))
    exchange = rig.wire.exchanges[0]
    rig.session.expire(exchange)
    assert exchange.expired and exchange.cancelled
    ((status, _, body),) = http_responses(rig.wire.out)
    assert (status, body) == (504, TIMEOUT_BODY)
    assert rig.wire.calls[-2:] == [("dispatch", "/next"), ("resume_reading",)]
    assert rig.reports.statuses == ["504 Gateway Timeout"]
    assert rig.reports.calls[0][2] == len(TIMEOUT_BODY)


def test_the_app_answering_after_its_504_writes_nothing_and_is_not_reported_again() -> None:
    """One report per response is the session's to keep (``Reports``): the
    recorder here does not mark the exchange reported, as ``Reporter`` does."""
    rig = Rig("fastcgi")
    rig.feed(fcgi_request(keep_conn=True)[1])
    exchange = rig.wire.exchanges[0]
    rig.session.expire(exchange)
    written = bytes(rig.wire.out)
    rig.app().start("200 OK", TEXT, b"too late", end=True)
    assert rig.wire.out == written
    assert rig.reports.statuses == ["504 Gateway Timeout"], "one report per response"


def test_expire_after_the_head_breaks_the_response_and_resets() -> None:
    rig = Rig("http")
    rig.feed(get("/slow"))
    app = rig.app()
    app.start("200 OK", TEXT, b"begun", end=False)
    written = bytes(rig.wire.out)
    rig.session.expire(app.exchange)
    assert rig.wire.out == written  # no 504 into the middle of a response
    assert rig.wire.kinds()[-1] == "reset"
    assert app.exchange.expired and app.exchange.cancelled
    # Reported now, as it was sent (the app may never return), and once.
    assert rig.reports.statuses == ["200 OK"]
    assert app.write(b"more") is False
    app.end()
    assert rig.wire.out == written
    assert rig.reports.statuses == ["200 OK"]


def test_expire_of_an_exchange_already_answered_or_on_a_closed_session_does_nothing() -> None:
    rig = Rig("http")
    rig.feed(get("/x"))
    app = rig.app()
    app.start("200 OK", TEXT, b"done", end=True)
    calls = list(rig.wire.calls)
    rig.session.expire(app.exchange)
    assert rig.wire.calls == calls and not app.exchange.expired

    rig = Rig("http")
    rig.feed(get("/x"))
    exchange = rig.wire.exchanges[0]
    rig.session.lost()
    calls = list(rig.wire.calls)
    rig.session.expire(exchange)
    assert rig.wire.calls == calls and exchange.cancelled
    assert rig.reports.calls == []


@pytest.mark.parametrize("kind", ["fastcgi", "scgi", "http"])
def test_timeout_answer_is_the_504_reported_once(kind: str) -> None:
    rig = Rig(kind)
    rig.feed(request_for(kind))
    exchange = rig.wire.exchanges[0]
    answer = rig.session.timeout_answer(exchange)
    assert exchange.expired
    assert rig.wire.out == b""  # the bytes are the caller's to send
    status, _, body = answer_of(kind, answer)
    assert (status, body) == (504, TIMEOUT_BODY)
    assert rig.reports.statuses == ["504 Gateway Timeout"]


def test_timeout_answer_after_the_head_is_nothing_and_reports_what_was_sent() -> None:
    rig = Rig("fastcgi")
    rig.feed(fcgi_request()[1])
    app = rig.app()
    app.start("200 OK", TEXT, b"begun", end=False)
    assert rig.session.timeout_answer(app.exchange) == b""
    assert app.exchange.expired and rig.reports.statuses == ["200 OK"]


# -- the deadlines (Deadline.next_deadline through Session.arm) ------------------------------------
def test_a_fresh_connection_may_stay_silent_for_the_keepalive_timeout() -> None:
    rig = Rig("http")
    assert rig.session.deadline == START + KEEPALIVE
    assert rig.session.waiting_for == ""


def test_a_trickling_head_gets_read_timeout_per_piece_and_header_timeout_in_all() -> None:
    rig = Rig("http")
    head = get("/trickle", "X-Padding: " + "p" * 40)
    rig.feed(head[:3])
    assert rig.session.deadline == START + READ
    assert rig.session.waiting_for == "more of the head"
    for offset in range(3, 10):  # a byte every 2.5 s: never silent for READ
        rig.clock.advance(2.5)
        rig.feed(head[offset : offset + 1])
        expected = min(rig.clock.now + READ, START + HEADER_CAP)
        assert rig.session.deadline == expected
    assert rig.session.deadline == START + HEADER_CAP
    assert rig.session.waiting_for == "the whole head within 10s"


def test_a_body_without_a_minimum_rate_may_be_silent_for_read_timeout() -> None:
    rig = Rig("http")
    rig.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    assert rig.session.deadline == START + READ
    assert rig.session.waiting_for == "more of the body"
    rig.clock.advance(100.0)  # however long it takes, while it keeps coming
    rig.feed(b"x" * 10)
    assert rig.session.deadline == START + 100.0 + READ


def test_a_body_below_the_minimum_rate_is_due_by_its_size() -> None:
    rig = Rig("http", min_body_rate=100)
    rig.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    # due = head + READ + 10 / 100: later than the silence rule, which applies
    assert rig.session.deadline == START + READ
    assert rig.session.waiting_for == "more of the body"
    rig.clock.advance(2.5)
    rig.feed(b"x" * 10)
    assert rig.session.deadline == pytest.approx(START + READ + 20 / 100)
    assert rig.session.waiting_for == "the body at 100 bytes/s"


def test_no_deadline_while_the_app_has_the_request_then_keepalive() -> None:
    rig = Rig("fastcgi")
    rig.feed(fcgi_request(keep_conn=True)[1])
    assert rig.session.deadline == 0.0
    rig.clock.advance(500.0)
    rig.app().start("204 No Content", [], b"", end=True)
    assert rig.session.deadline == START + 500.0 + KEEPALIVE
    assert rig.session.waiting_for == ""


def test_hold_suspends_the_deadline_and_the_head_clock_starts_when_read() -> None:
    rig = Rig("http")
    rig.session.hold()  # the driver leaves the connection unread (--read-ahead)
    assert rig.session.deadline == 0.0
    rig.clock.advance(100.0)
    head = get("/held")
    rig.feed(head[:5])
    assert rig.session.deadline == START + 100.0 + READ
    rig.clock.advance(2.0)
    rig.session.hold()  # held again mid-head: its clock restarts too
    assert rig.session.deadline == 0.0
    rig.clock.advance(9.0)
    rig.feed(head[5:6])
    rig.clock.advance(2.9)
    rig.feed(head[6:7])
    # Counted from the read after the hold (START + 111), not from START + 100.
    assert rig.session.deadline == pytest.approx(START + 113.9 + READ)


# -- timed_out, write_stalled ---------------------------------------------------------------------
def test_timed_out_logs_what_was_awaited_and_closes(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig("http")
    rig.feed(get("/x")[:8])
    rig.session.timed_out()
    assert dumbwaiter_lines(caplog) == [
        f"http test: {PEER_NAME}: closing: still waiting for more of the head"
    ]
    assert rig.wire.calls == [("close",)]


@pytest.mark.parametrize("state", ["fresh", "kept-alive", "lingering", "closed"])
def test_timed_out_is_quiet_for_a_connection_with_nothing_half_done(
    state: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig("http")
    if state == "kept-alive":
        rig.feed(get("/x"))
        rig.app().start("200 OK", TEXT, b"x", end=True)
    elif state == "lingering":
        rig.feed(get("/x")[:8] + b"\0\r\n\r\n")
    elif state == "closed":
        rig.feed(get("/x")[:8])
        rig.session.lost()
    caplog.clear()
    calls = len(rig.wire.calls)
    rig.session.timed_out()
    assert dumbwaiter_lines(caplog) == []
    assert rig.wire.calls[calls:] == ([] if state == "closed" else [("close",)])


def test_write_stalled_past_the_write_timeout_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig("http")
    assert not rig.session.write_stalled(START, START + WRITE)
    assert dumbwaiter_lines(caplog) == []
    assert rig.session.write_stalled(START, START + WRITE + 0.5)
    assert dumbwaiter_lines(caplog) == [
        f"http test: {PEER_NAME}: the peer read nothing for 4s, dropping the connection"
    ]


# -- eof ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "cut", "line"),
    [
        ("http", get("/x")[:10], "closed in the middle of a request"),
        ("fastcgi", fcgi_request(stdin_end=False)[1], "closed in the middle of a request"),
        ("scgi", scgi.encode_request(ENVIRON, b"0123456789")[:-4], "SCGI request cut short"),
    ],
)
def test_eof_in_the_middle_of_a_request_closes_and_says_so(
    kind: str, cut: bytes, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(kind)
    rig.feed(cut)
    assert rig.session.eof() is False
    assert dumbwaiter_lines(caplog) == [f"{kind} test: {PEER_NAME}: {line}"]
    assert rig.wire.count("dispatch") == 0


@pytest.mark.parametrize("kind", ["http", "fastcgi", "scgi"])
def test_eof_after_a_complete_request_keeps_the_connection_for_its_response(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(kind)
    rig.feed(request_for(kind))
    assert rig.session.eof() is True
    assert dumbwaiter_lines(caplog) == []
    assert rig.wire.count("close") == 0
    rig.app().start("200 OK", TEXT, b"still answered", end=True)
    status, headers, body = answer_of(kind, rig.wire.out)
    assert (status, body) == (200, b"still answered")
    if kind == "http":
        assert headers["connection"] == "close"
    assert rig.wire.kinds()[-1] == "close"


def test_eof_on_an_idle_connection_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    for kind in PROTOCOLS:
        rig = Rig(kind)
        assert rig.session.eof() is False
    rig = Rig("http")
    rig.feed(get("/x"))
    rig.app().start("200 OK", TEXT, b"x", end=True)
    assert rig.session.eof() is False
    assert dumbwaiter_lines(caplog) == []


# -- drain ----------------------------------------------------------------------------------------
def test_drain_closes_an_idle_kept_alive_connection_now() -> None:
    rig = Rig("http")
    rig.feed(get("/x"))
    rig.app().start("200 OK", TEXT, b"x", end=True)
    assert rig.session.drain() is True


def test_drain_gives_a_fresh_connection_the_grace_then_closes_after_its_request() -> None:
    rig = Rig("http")
    rig.clock.advance(1.0)
    assert rig.session.drain() is False
    assert rig.session.deadline == START + 1.0 + DRAIN_GRACE
    rig.feed(get("/late"))
    rig.app().start("200 OK", TEXT, b"served", end=True)
    ((status, headers, body),) = http_responses(rig.wire.out)
    assert (status, body, headers["connection"]) == (200, b"served", "close")
    assert rig.wire.kinds()[-1] == "close"


def test_drain_lets_the_request_in_flight_finish_then_closes() -> None:
    rig = Rig("fastcgi")
    rig.feed(fcgi_request(keep_conn=True)[1])
    assert rig.session.drain() is False
    assert rig.wire.count("close") == 0
    rig.app().start("200 OK", TEXT, b"last", end=True)
    kinds = rig.wire.kinds()
    assert kinds[-1] == "close" and kinds.index("write") < kinds.index("close")
    assert fcgi_answers(rig.wire.out)[1] == [EndRequest(1, 0, 0)]


def test_drain_waits_for_a_request_partly_received() -> None:
    rig = Rig("http")
    rig.feed(get("/x")[:10])
    assert rig.session.drain() is False
    assert rig.session.deadline == START + READ  # its own deadline, not the grace


# -- reports, aborts, a connection lost ------------------------------------------------------------
def test_each_response_is_reported_once_with_its_status() -> None:
    rig = Rig("http")
    rig.feed(get("/a") + get("/b") + get("/c"))
    rig.app(0).start("201 Created", TEXT, b"a", end=True)
    rig.wire.busy = True
    rig.app(1).start("404 Not Found", TEXT, b"", end=False)
    rig.app(1).write(b"bb")
    rig.app(1).end()  # /c is dispatched now, and refused
    assert rig.reports.statuses == ["201 Created", "404 Not Found", "503 Service Unavailable"]
    assert [sent for _, _, sent, _ in rig.reports.calls] == [1, 2, len(BUSY_BODY)]
    assert {gateway for _, _, _, gateway in rig.reports.calls} == {"http"}
    assert [s for s, _, _ in http_responses(rig.wire.out)] == [201, 404, 503]


def test_an_app_abort_after_the_head_resets_the_connection() -> None:
    rig = Rig("http")
    rig.feed(get("/x") + get("/y"))
    app = rig.app()
    app.start("200 OK", [("Content-Length", "100")], b"short", end=False)
    written = bytes(rig.wire.out)
    app.abort()
    assert rig.wire.out == written
    assert rig.wire.count("reset") == 1
    assert rig.wire.kinds()[-1] == "close"
    assert rig.wire.count("dispatch") == 1  # /y is dropped with the connection
    assert rig.reports.statuses == ["200 OK"]


def test_a_lost_connection_cancels_what_is_owed_and_writes_nothing_more() -> None:
    rig = Rig("http")
    rig.feed(get("/one") + get("/two"))
    exchange = rig.wire.exchanges[0]
    rig.session.lost()
    assert exchange.cancelled and rig.session.closed
    assert not rig.session.waiting
    calls = list(rig.wire.calls)
    app = rig.app()
    app.start("200 OK", TEXT, b"nobody hears", end=False)
    assert app.write(b"this") is False
    app.end()
    assert rig.wire.calls == calls  # no write, no dispatch of /two, no close
    assert len(rig.reports.calls) == 1
