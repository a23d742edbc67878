"""The event loop's driver (``server/connection.py``) against a fake transport.

Everything real but the socket: a real asyncio event loop, the real
``LoopServer`` (built by ``worker.build()`` from a ``Config``, not started:
each test makes its ``Connection`` itself and hands it a
:class:`FakeTransport`), the real ``ThreadPool`` (started, stopped at the
end), the real WSGI gateway and the real protocols, with small apps wrapped
in ``wsgiref.validate.validator``.  The loop runs only inside
:meth:`Worker.until` / :meth:`Worker.turn`, each bounded in time; the
transport's bytes are decoded with the client-side protocol helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest

from dumbwaiter.config import Config
from dumbwaiter.errors import ClientDisconnected
from dumbwaiter.protocols import Role
from dumbwaiter.protocols.fastcgi_client import EndRequest, FastCGIClientProtocol, Stdout
from dumbwaiter.protocols.fastcgi_records import END_REQUEST, OVERLOADED, STDOUT
from dumbwaiter.protocols.http_client import Data, EndOfMessage, HTTPClientProtocol, Response
from dumbwaiter.server.connection import Connection
from dumbwaiter.server.listeners import Listener
from dumbwaiter.server.session import BUSY_BODY, TIMEOUT_BODY
from dumbwaiter.server.sockets import Address
from dumbwaiter.server.worker import build

KINDS = ("fastcgi", "http")
PARAMS = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/odd",
    "QUERY_STRING": "",
    "SERVER_NAME": "example.org",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
}
FCGI_HEADER = struct.Struct(">BBHHBx")


class FakeTransport:
    """What ``Connection`` uses of an ``asyncio.Transport``, recorded.

    As asyncio's own: ``close()`` and ``abort()`` call the protocol's
    ``connection_lost`` on the loop's next turn; ``write()`` after
    ``write_eof()`` raises.  Bytes written after a close are kept apart in
    ``after_close``.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: Connection, *, eof_ok: bool = True
    ) -> None:
        self.loop = loop
        self.protocol = protocol
        self.eof_ok = eof_ok
        self.out = bytearray()
        self.after_close = bytearray()
        self.calls: list[str] = []
        #: The calls and the writes, in order.
        self.log: list[str] = []
        self.reading = True
        self.closing = False
        self.aborted = False
        self.eof = False
        self.limits: tuple[int | None, int | None] | None = None
        self.buffered = 0

    def write(self, data: bytes) -> None:
        if self.eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        self.log.append("write")
        (self.after_close if self.closing else self.out).extend(data)

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")
        self.log.append("pause_reading")
        self.reading = False

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")
        self.log.append("resume_reading")
        self.reading = True

    def close(self) -> None:
        self.calls.append("close")
        self.log.append("close")
        self._lose()

    def abort(self) -> None:
        self.calls.append("abort")
        self.log.append("abort")
        self.aborted = True
        self._lose()

    def _lose(self) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def feed_eof(self) -> bool:
        """The peer half-closed: as asyncio, close unless the protocol keeps it."""
        keep = bool(self.protocol.eof_received())
        if not keep:
            self.close()
        return keep

    def can_write_eof(self) -> bool:
        return self.eof_ok

    def write_eof(self) -> None:
        self.calls.append("write_eof")
        self.log.append("write_eof")
        self.eof = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": "", "sockname": "/run/test.sock"}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (high, low)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


class Worker:
    """A worker's loop side as ``worker.build()`` wires it, not started:
    connections are made by the test, over fake transports."""

    def __init__(self, app: Callable[..., Iterable[bytes]], **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        # The loop's driver only (by default the threads would accept on
        # the gateway listeners too).
        self.config = Config(loop_only=True, **settings)
        self.gates: list[threading.Event] = []
        self.listeners: dict[str, Listener] = {}
        for kind in KINDS:
            path = f"/run/dumbwaiter-test/{kind}.sock"
            address = Address(f"unix:{path}", "unix", path=path)
            # (an unbound socket: a Listener asks it its family only)
            self.listeners[kind] = Listener(kind, address, socket.socket(socket.AF_UNIX))
        self.ctx, self.server, direct, _ = build(
            self.loop, validator(app), self.config, list(self.listeners.values()), None, None
        )
        assert direct is None
        self.pool = self.ctx.pool
        self.pool.start()

    def gate(self) -> threading.Event:
        """An event an app waits on; set when the test ends, whatever happens."""
        event = threading.Event()
        self.gates.append(event)
        return event

    def connect(self, kind: str, *, eof_ok: bool = True) -> tuple[Connection, FakeTransport]:
        conn = Connection(self.server, self.listeners[kind])
        transport = FakeTransport(self.loop, conn, eof_ok=eof_ok)
        conn.connection_made(transport)
        return conn, transport

    def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        """Run the loop until ``check()`` (AssertionError past ``timeout``)."""

        async def wait() -> None:
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline:
                    raise AssertionError("timed out waiting for the condition")
                await asyncio.sleep(0.002)

        self.loop.run_until_complete(wait())

    def turn(self, seconds: float = 0.1) -> None:
        """Run the loop for ``seconds``: what should not happen has the time to."""
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def close(self) -> None:
        for event in self.gates:
            event.set()
        # Let the threads' last calls land on the loop before it closes.
        with contextlib.suppress(AssertionError):
            self.until(lambda: self.pool.pending <= 0, timeout=2.0)
        self.pool.stop(timeout=2.0)
        self.turn(0.01)
        self.loop.close()
        for listener in self.listeners.values():
            listener.sock.close()


@pytest.fixture
def make_worker() -> Iterator[Callable[..., Worker]]:
    made: list[Worker] = []

    def make(app: Callable[..., Iterable[bytes]], **settings: Any) -> Worker:
        worker = Worker(app, **settings)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()


# -- requests and answers -------------------------------------------------------------------------
def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: example.org", *headers, "", ""]
    return "\r\n".join(lines).encode("latin-1")


def http_responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The complete responses in ``data``: (status, headers lowercased, body)."""
    responses: list[tuple[int, dict[str, str], bytes]] = []
    head: Response | None = None
    body = b""
    for event in HTTPClientProtocol().receive_data(bytes(data)):
        if isinstance(event, Response):
            head, body = event, b""
        elif isinstance(event, Data):
            body += event.data
        elif isinstance(event, EndOfMessage):
            assert head is not None
            headers = {n.decode().lower(): v.decode() for n, v in head.headers}
            responses.append((head.status, headers, body))
    return responses


def fcgi_request(
    params: dict[str, str] = PARAMS, body: bytes = b"", *, keep_conn: bool = False
) -> tuple[int, bytes]:
    client = FastCGIClientProtocol()
    rid = client.begin_request(Role.RESPONDER, keep_conn=keep_conn)
    parts = [client.send_begin(rid), client.send_params(rid, params), client.send_params(rid, {})]
    if body:
        parts.append(client.send_stdin(rid, body))
    parts.append(client.send_stdin(rid, b""))
    return rid, b"".join(parts)


def fcgi_record(kind: int, rid: int, content: bytes = b"") -> bytes:
    return FCGI_HEADER.pack(1, kind, rid, len(content), 0) + content


def pieces(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    """``data`` cut into reads of the given sizes, cycled."""
    sizes = list(sizes)
    position = 0
    index = 0
    while position < len(data):
        size = sizes[index % len(sizes)]
        yield data[position : position + size]
        position += size
        index += 1


def echo_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """Says the path and how many body bytes it read."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    received = len(environ["wsgi.input"].read(length)) if length else 0
    body = f"{environ['PATH_INFO']} read {received}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def dumbwaiter_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "dumbwaiter"]


# -- FastCGI, HTTP ------------------------------------------------------------------------------
@pytest.mark.parametrize("keep_conn", [False, True])
def test_a_fastcgi_request_fed_in_odd_pieces_is_answered_byte_exact(
    make_worker: Callable[..., Worker], keep_conn: bool
) -> None:
    worker = make_worker(echo_app)
    conn, transport = worker.connect("fastcgi")
    assert transport.limits == (worker.config.write_buffer, None)
    rid, data = fcgi_request(body=bytes(range(256)) * 20, keep_conn=keep_conn)
    for piece in pieces(data, (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 7)):
        conn.data_received(piece)
    worker.until(
        lambda: EndRequest(rid, 0, 0) in FastCGIClientProtocol().receive_data(transport.out)
    )

    body = b"/odd read 5120"
    head = b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n"
    assert bytes(transport.out) == (
        fcgi_record(STDOUT, rid, head + body)
        + fcgi_record(STDOUT, rid)
        + fcgi_record(END_REQUEST, rid, struct.pack(">IB3x", 0, 0))
    )
    events = FastCGIClientProtocol().receive_data(bytes(transport.out))
    assert events == [Stdout(rid, head + body), EndRequest(rid, 0, 0)]
    if keep_conn:
        worker.turn(0.05)
        assert not transport.closing and conn in worker.server.connections
        assert conn.session.deadline > 0.0  # the keep-alive wait
    else:
        worker.until(lambda: conn not in worker.server.connections)
        assert transport.calls[-1] == "close" and not transport.after_close


def test_http_keep_alive_answers_two_pipelined_requests_in_order(
    make_worker: Callable[..., Worker],
) -> None:
    worker = make_worker(echo_app)
    conn, transport = worker.connect("http")
    conn.data_received(get("/one") + get("/two"))
    assert transport.calls == ["pause_reading"]  # the second waits for the first's answer
    worker.until(lambda: len(http_responses(transport.out)) == 2)
    responses = http_responses(transport.out)
    assert [(status, body) for status, _, body in responses] == [
        (200, b"/one read 0"),
        (200, b"/two read 0"),
    ]
    assert all("connection" not in headers for _, headers, _ in responses)
    assert transport.reading and "resume_reading" in transport.calls
    # Still kept alive: a third request on the same connection.
    conn.data_received(get("/three"))
    worker.until(lambda: len(http_responses(transport.out)) == 3)
    assert http_responses(transport.out)[2][2] == b"/three read 0"
    assert not transport.closing


# -- flow control -------------------------------------------------------------------------------
CHUNKS = [bytes([ord("a") + i]) * 1000 for i in range(6)]


def test_a_paused_transport_blocks_the_apps_write_until_resume_writing(
    make_worker: Callable[..., Worker],
) -> None:
    progress: list[int] = []
    worker_box: list[Worker] = []

    def streaming_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        gate = worker_box[0].gates[0]

        def body() -> Iterator[bytes]:
            for index, chunk in enumerate(CHUNKS):
                if index == 1:
                    gate.wait(10)
                progress.append(index)
                yield chunk

        return body()

    worker = make_worker(streaming_app, write_buffer=4096)
    worker_box.append(worker)
    gate = worker.gate()
    conn, transport = worker.connect("http")
    conn.data_received(get("/stream"))
    worker.until(lambda: CHUNKS[0] in transport.out)

    conn.pause_writing()  # the transport's buffer passed its high-water mark
    gate.set()
    worker.until(lambda: progress == [0, 1])
    written = bytes(transport.out)
    worker.turn(0.2)
    assert progress == [0, 1], "the app waits in its write"
    assert transport.out == written

    conn.resume_writing()
    worker.until(lambda: len(http_responses(transport.out)) == 1)
    ((status, _, body),) = http_responses(transport.out)
    assert (status, body) == (200, b"".join(CHUNKS))
    assert progress == list(range(len(CHUNKS)))


def test_the_apps_writes_wait_while_more_than_write_buffer_is_on_its_way(
    make_worker: Callable[..., Worker],
) -> None:
    """The other mark: bytes handed to the loop but not yet to the transport."""
    progress: list[int] = []

    def streaming_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for index, chunk in enumerate(CHUNKS):
            progress.append(index)
            yield chunk

    worker = make_worker(streaming_app, write_buffer=1000)
    conn, transport = worker.connect("http")
    conn.data_received(get("/stream"))  # the loop does not run: nothing is released
    deadline = time.monotonic() + 5.0
    while len(progress) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.2)
    # 1000 bytes queued pass (not past the mark), 2000 wait.
    assert progress == [0, 1, 2]
    assert transport.out == b""
    worker.until(lambda: len(http_responses(transport.out)) == 1)
    assert http_responses(transport.out)[0][2] == b"".join(CHUNKS)


# -- the client leaves while the app streams ----------------------------------------------------
class Stream:
    """An app's result that yields until told, and notes its close()."""

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate
        self.yielded = 0
        self.closed = threading.Event()

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> bytes:
        if self.yielded == 1:
            self.gate.wait(10)
        if self.yielded == 50:
            raise StopIteration
        self.yielded += 1
        return b"chunk %d\n" % self.yielded

    def close(self) -> None:
        self.closed.set()


def test_connection_lost_while_the_app_streams_stops_it_and_writes_nothing_more(
    make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    streams: list[Stream] = []
    worker_box: list[Worker] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Stream:
        start_response("200 OK", [("Content-Type", "text/plain")])
        streams.append(Stream(worker_box[0].gates[0]))
        return streams[0]

    worker = make_worker(app)
    worker_box.append(worker)
    gate = worker.gate()
    conn, transport = worker.connect("http")
    conn.data_received(get("/stream"))
    worker.until(lambda: b"chunk 1\n" in transport.out)

    conn.connection_lost(ConnectionResetError())
    assert conn not in worker.server.connections
    written = bytes(transport.out)
    gate.set()
    worker.until(streams[0].closed.is_set)
    worker.until(lambda: worker.pool.pending == 0)  # the thread is free again
    assert streams[0].yielded == 2  # the next chunk found the client gone
    assert transport.out == written and not transport.after_close
    assert not [line for line in dumbwaiter_lines(caplog) if "internal error" in line]
    assert not [r for r in caplog.records if r.name == "dumbwaiter.app"]


def test_connection_lost_raises_client_disconnected_into_the_write_callable(
    make_worker: Callable[..., Worker],
) -> None:
    seen: list[BaseException] = []
    worker_box: list[Worker] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"first\n")
        worker_box[0].gates[0].wait(10)
        try:
            write(b"second\n")
        except ClientDisconnected as exc:
            seen.append(exc)
            raise
        return []

    worker = make_worker(app)
    worker_box.append(worker)
    gate = worker.gate()
    conn, transport = worker.connect("http")
    conn.data_received(get("/write"))
    worker.until(lambda: b"first\n" in transport.out)
    conn.connection_lost(None)
    written = bytes(transport.out)
    gate.set()
    worker.until(lambda: bool(seen) and worker.pool.pending == 0)
    assert isinstance(seen[0], ClientDisconnected)
    assert transport.out == written and b"second" not in transport.out


# -- 503, a peer's error, read-ahead --------------------------------------------------------------
def blocking_app(
    worker_box: list[Worker], calls: list[str]
) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
    """``/block`` waits for the worker's first gate; every path is noted."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/block":
            worker_box[0].gates[0].wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    return app


@pytest.mark.parametrize("kind", KINDS)
def test_a_full_pool_answers_503_at_once_without_the_app(
    make_worker: Callable[..., Worker], kind: str
) -> None:
    calls: list[str] = []
    box: list[Worker] = []
    worker = make_worker(blocking_app(box, calls), threads=1, queue_size=0)
    box.append(worker)
    gate = worker.gate()
    first, first_transport = worker.connect("http")
    first.data_received(get("/block"))
    worker.until(lambda: calls == ["/block"])

    conn, transport = worker.connect(kind)
    if kind == "http":
        conn.data_received(get("/second"))
        ((status, headers, body),) = http_responses(transport.out)  # before any loop turn
        assert (status, body, headers["retry-after"]) == (503, BUSY_BODY, "1")
    else:
        rid, data = fcgi_request({**PARAMS, "PATH_INFO": "/second"}, keep_conn=True)
        conn.data_received(data)
        events = FastCGIClientProtocol().receive_data(bytes(transport.out))
        assert events[-1] == EndRequest(rid, 0, OVERLOADED)
        assert b"Retry-After: 1\r\n" in b"".join(
            event.data for event in events if isinstance(event, Stdout)
        )
    worker.turn(0.1)
    assert calls == ["/block"]
    assert not transport.closing  # read whole: the connection goes on

    gate.set()
    worker.until(lambda: len(http_responses(first_transport.out)) == 1)
    assert http_responses(first_transport.out)[0][2] == b"/block"
    assert calls == ["/block"]


@pytest.mark.parametrize("eof_ok", [True, False])
def test_a_peer_error_is_answered_then_the_connection_lingers(
    make_worker: Callable[..., Worker], eof_ok: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dumbwaiter")
    calls: list[str] = []
    worker = make_worker(blocking_app([], calls))
    conn, transport = worker.connect("http", eof_ok=eof_ok)
    conn.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    ((status, headers, _),) = http_responses(transport.out)
    assert (status, headers["connection"]) == (400, "close")
    assert len(dumbwaiter_lines(caplog)) == 1
    assert conn.session.lingering
    if eof_ok:
        assert transport.calls == ["write_eof"] and not transport.closing
        conn.data_received(get("/dropped"))  # read and dropped
        worker.turn(0.05)
        assert calls == [] and len(http_responses(transport.out)) == 1
        assert transport.feed_eof() is False  # the peer is done too: close
    else:
        assert transport.calls == ["close"]
    worker.until(lambda: conn not in worker.server.connections)


@pytest.mark.parametrize("read_ahead", [1, 0])
def test_read_ahead_leaves_a_new_connections_request_unread_until_a_thread_frees(
    make_worker: Callable[..., Worker], read_ahead: int
) -> None:
    """threads=1, --read-ahead 1: one request running and one queued fill the
    room, so a third connection's first bytes are kept unparsed and its
    reading paused (no deadline meanwhile), until the first request ends.
    With --read-ahead 0 every request is read at once."""
    calls: list[str] = []
    box: list[Worker] = []
    worker = make_worker(blocking_app(box, calls), threads=1, queue_size=4, read_ahead=read_ahead)
    box.append(worker)
    gate = worker.gate()
    running, running_transport = worker.connect("http")
    running.data_received(get("/block"))
    worker.until(lambda: calls == ["/block"])
    queued, queued_transport = worker.connect("http")
    queued.data_received(get("/queued"))
    assert worker.pool.pending == 2

    late, late_transport = worker.connect("http")
    late.data_received(get("/late"))
    admission = worker.server.admission
    if read_ahead:
        assert late.deferred and list(admission.deferred) == [late]
        assert late_transport.calls == ["pause_reading"]
        assert late.session.deadline == 0.0
        assert worker.pool.pending == 2  # not parsed, not queued
    else:
        assert not late.deferred and worker.pool.pending == 3
    worker.turn(0.1)
    assert calls == ["/block"] and late_transport.out == b""

    gate.set()
    worker.until(lambda: len(http_responses(late_transport.out)) == 1)
    assert calls == ["/block", "/queued", "/late"]
    assert http_responses(late_transport.out)[0][2] == b"/late"
    assert late_transport.reading and not admission.deferred
    if read_ahead:  # read again before it is answered
        assert late_transport.log[:2] == ["pause_reading", "resume_reading"]
    assert http_responses(queued_transport.out)[0][2] == b"/queued"
    assert http_responses(running_transport.out)[0][2] == b"/block"


def test_a_deferred_connection_that_half_closes_is_read_at_once(
    make_worker: Callable[..., Worker],
) -> None:
    calls: list[str] = []
    box: list[Worker] = []
    worker = make_worker(blocking_app(box, calls), threads=1, queue_size=4, read_ahead=1)
    box.append(worker)
    worker.gate()
    for path in ("/block", "/queued"):
        conn, _ = worker.connect("http")
        conn.data_received(get(path))
    late, late_transport = worker.connect("http")
    late.data_received(get("/late"))
    assert late.deferred
    assert late_transport.feed_eof() is True  # its request is whole: kept for its answer
    assert not late.deferred and not worker.server.admission.deferred
    assert worker.pool.pending == 3


# -- --timeout with every thread stuck ----------------------------------------------------------
def test_a_request_answered_503_because_every_thread_is_stuck_is_never_run(
    make_worker: Callable[..., Worker],
) -> None:
    """``LoopServer.expire`` with every thread stuck answers what waits 503
    (``Session.answer_busy``: "a thread that frees up after all skips it")."""
    calls: list[str] = []
    box: list[Worker] = []
    worker = make_worker(blocking_app(box, calls), threads=1, queue_size=4, timeout=30.0)
    box.append(worker)
    gate = worker.gate()
    stuck, stuck_transport = worker.connect("http")
    stuck.data_received(get("/block"))
    worker.until(lambda: calls == ["/block"])
    waiting, waiting_transport = worker.connect("http")
    waiting.data_received(get("/waiting"))

    (exchange,) = stuck.session.running.values()
    worker.server.expire(exchange)
    ((status, _, body),) = http_responses(stuck_transport.out)
    assert (status, body) == (504, TIMEOUT_BODY)
    ((status, _, body),) = http_responses(waiting_transport.out)
    assert (status, body) == (503, BUSY_BODY)

    gate.set()  # the stuck thread comes back after all
    worker.turn(0.3)
    assert calls == ["/block"], "the request answered 503 must not reach the app"


# -- the tick's duties: stalled writes, a graceful stop -------------------------------------------
def big_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = b"x" * 10_000
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10000")])
    return [body]


def test_a_peer_that_takes_nothing_for_write_timeout_is_dropped(
    make_worker: Callable[..., Worker], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dumbwaiter")
    worker = make_worker(big_app, write_timeout=4.0)
    conn, transport = worker.connect("http")
    now = time.monotonic()
    conn.check_writes(now)  # (what the tick does once a second)
    conn.data_received(get("/big"))
    worker.until(lambda: len(http_responses(transport.out)) == 1)
    transport.buffered = len(transport.out) - 1000  # the peer took 1000 bytes
    conn.check_writes(now + 1.0)
    transport.buffered -= 1000  # and 1000 more
    conn.check_writes(now + 3.0)
    conn.check_writes(now + 7.0)  # 4 s without progress: not past the limit yet
    assert not transport.aborted
    conn.check_writes(now + 7.5)
    assert transport.aborted
    assert dumbwaiter_lines(caplog)[-1].endswith(
        "the peer read nothing for 4s, dropping the connection"
    )
    worker.until(lambda: conn not in worker.server.connections)


def test_the_write_stall_watch_starts_with_the_connection(
    make_worker: Callable[..., Worker],
) -> None:
    """A connection whose bytes all still wait in its transport at its first
    check has not been stalled since the clock's origin: it has at most
    ``--write-timeout`` from then."""
    worker = make_worker(big_app, write_timeout=4.0)
    conn, transport = worker.connect("http")
    conn.data_received(get("/big"))
    worker.until(lambda: len(http_responses(transport.out)) == 1)
    transport.buffered = len(transport.out)  # nothing taken yet
    conn.check_writes(time.monotonic())  # the first tick since it was accepted
    assert not transport.aborted, "dropped at its first check, as if stalled since time 0"


def test_a_graceful_stop_closes_idle_connections_and_finishes_the_others(
    make_worker: Callable[..., Worker],
) -> None:
    calls: list[str] = []
    box: list[Worker] = []
    worker = make_worker(blocking_app(box, calls))
    box.append(worker)
    gate = worker.gate()
    idle, idle_transport = worker.connect("http")
    idle.data_received(get("/x"))
    worker.until(lambda: len(http_responses(idle_transport.out)) == 1)
    busy, busy_transport = worker.connect("http")
    busy.data_received(get("/block"))
    worker.until(lambda: "/block" in calls)
    fresh, fresh_transport = worker.connect("http")

    worker.server.stop()
    worker.server.drain()
    assert idle_transport.calls[-1] == "close"
    assert not busy_transport.closing and not fresh_transport.closing
    assert 0.0 < fresh.session.deadline <= time.monotonic() + 1.0  # the grace

    gate.set()
    worker.until(lambda: busy_transport.closing)
    ((status, headers, body),) = http_responses(busy_transport.out)
    assert (status, body, headers["connection"]) == (200, b"/block", "close")
    worker.until(lambda: worker.server.connections == {fresh})


def test_every_loop_side_writer_waits_for_the_same_resume(
    make_worker: Callable[..., Worker],
) -> None:
    """Several tasks writing to one connection (ASGI requests on a
    multiplexed FastCGI connection, a static file) wait while it is paused,
    and all go on when it resumes."""
    worker = make_worker(echo_app)
    conn, _ = worker.connect("fastcgi")
    conn.pause_writing()
    tasks = [worker.loop.create_task(conn.drained()) for _ in range(3)]
    worker.turn(0.05)
    assert not any(task.done() for task in tasks)
    conn.resume_writing()
    worker.until(lambda: all(task.done() for task in tasks))
