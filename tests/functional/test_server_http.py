"""A real dumbwaiter process serving HTTP/1.1, driven by real clients."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest

from serving import Server, connect, free_port


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    port = free_port()
    with Server(
        [
            "--http",
            f"127.0.0.1:{port}",
            "--threads",
            "4",
            "--max-body",
            "1M",
            "--max-header-count",
            "50",
        ]
    ) as srv:
        srv.port = port  # type: ignore[attr-defined]
        yield srv


def client(server: Server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)  # type: ignore[attr-defined]


def raw(server: Server, data: bytes, wait: float = 0.3) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes
    or ``wait`` seconds pass without data."""
    sock = connect(f"127.0.0.1:{server.port}")  # type: ignore[attr-defined]
    sock.sendall(data)
    sock.settimeout(wait)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        pass
    sock.close()
    return b"".join(chunks)


def test_hello_and_keepalive(server: Server) -> None:
    conn = client(server)
    for _ in range(3):
        conn.request("GET", "/hello")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"Hello world\n"
        assert response.getheader("Server") == "dumbwaiter"
        assert response.getheader("Date")
    conn.close()


def test_environ_over_http(server: Server) -> None:
    conn = client(server)
    conn.request(
        "POST",
        "/echo/a%2Fb?x=1&y=%20",
        body=b"abc",
        headers={"Content-Type": "text/plain", "X-Test": "yes", "Host": "example.org:81"},
    )
    info = json.loads(conn.getresponse().read())
    assert info["REQUEST_METHOD"] == "POST"
    assert info["PATH_INFO"] == "/echo/a/b"
    assert info["QUERY_STRING"] == "x=1&y=%20"
    assert info["CONTENT_LENGTH"] == "3"
    assert info["HTTP_X_TEST"] == "yes"
    assert info["SERVER_NAME"] in ("example.org", "127.0.0.1")
    assert info["REMOTE_ADDR"] == "127.0.0.1"
    assert info["body_length"] == 3


def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    requests = b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(5))
    data = raw(server, requests, wait=1.0)
    order = [
        int(part.split(b'"QUERY_STRING": "n=')[1][:1]) for part in data.split(b"HTTP/1.1 200")[1:]
    ]
    assert order == [0, 1, 2, 3, 4]


def test_chunked_request_body(server: Server) -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    data = raw(
        server,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + body,
    )
    assert b"200 OK" in data
    assert b'"body_length": 11' in data
    assert b'"CONTENT_LENGTH": "11"' in data


def test_expect_100_continue(server: Server) -> None:
    sock = connect(f"127.0.0.1:{server.port}")  # type: ignore[attr-defined]
    sock.sendall(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    )
    assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    sock.sendall(b"data")
    assert b'"body_length": 4' in sock.recv(65536)
    sock.close()


def test_head_has_no_body(server: Server) -> None:
    conn = client(server)
    conn.request("HEAD", "/hello")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Length") == "12"
    assert response.read() == b""
    conn.request("GET", "/hello")  # the connection is still in step
    assert conn.getresponse().read() == b"Hello world\n"


def test_streamed_response_is_chunked_and_streams(server: Server) -> None:
    conn = client(server)
    conn.request("GET", "/stream?go-stream")
    response = conn.getresponse()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.read1(100) == b"first\n"  # arrived while the app still holds the last
    server.release("go-stream")
    assert response.read() == b"last\n"


def test_app_error_is_500_without_traceback(server: Server) -> None:
    conn = client(server)
    conn.request("GET", "/error")
    response = conn.getresponse()
    assert response.status == 500
    assert b"Traceback" not in response.read()
    assert "the app failed on purpose" in server.log()


def test_error_after_head_breaks_the_response(server: Server) -> None:
    conn = client(server)
    conn.request("GET", "/error-late")
    response = conn.getresponse()
    assert response.status == 200
    # The chunked body never gets its last chunk: the client sees a reset.
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        response.read()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"400"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            b"400",
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", b"413"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(60)) + b"\r\n", b"431"),
        (b"\x16\x03\x01garbage\r\n\r\n", b"400"),
    ],
    ids=[
        "two-lengths",
        "negative-length",
        "length-and-chunked",
        "too-big",
        "long-uri",
        "many-headers",
        "garbage",
    ],
)
def test_bad_requests_get_their_4xx_and_close(
    server: Server, request_bytes: bytes, status: bytes
) -> None:
    data = raw(server, request_bytes)
    assert data.startswith(b"HTTP/1.1 " + status), data[:200]
    assert b"Connection: close" in data
    # ... and the server carries on.
    conn = client(server)
    conn.request("GET", "/hello")
    assert conn.getresponse().status == 200


def test_connection_close_is_honoured(server: Server) -> None:
    data = raw(server, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", wait=5)
    assert data.endswith(b"Hello world\n")  # and the server closed: raw() returned early
    assert b"Connection: close" in data


def test_http10_closes_by_default(server: Server) -> None:
    started = time.monotonic()
    data = raw(server, b"GET /hello HTTP/1.0\r\n\r\n", wait=5)
    assert time.monotonic() - started < 4
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello world\n")


def test_client_vanishing_mid_body_loses_nothing(server: Server) -> None:
    sock = connect(f"127.0.0.1:{server.port}")  # type: ignore[attr-defined]
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly part")
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    conn = client(server)
    conn.request("GET", "/hello")
    assert conn.getresponse().status == 200


def test_big_body_is_byte_exact(server: Server) -> None:
    conn = client(server)
    conn.request("GET", "/big")
    assert conn.getresponse().read() == bytes(range(256)) * 480


def test_idle_and_partial_requests_time_out() -> None:
    port = free_port()
    with Server(
        ["--http", f"127.0.0.1:{port}", "--keepalive-timeout", "1", "--read-timeout", "1"]
    ) as srv:
        idle = connect(f"127.0.0.1:{port}")
        partial = connect(f"127.0.0.1:{port}")
        partial.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # never finished
        started = time.monotonic()
        for sock in (idle, partial):
            sock.settimeout(5)
            assert sock.recv(100) == b""  # closed by the server
        assert time.monotonic() - started < 4
        assert "closing: still waiting for more of the head" in srv.log()
        fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        fresh.request("GET", "/hello")
        assert fresh.getresponse().status == 200


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_file_wrapper_byte_exact(loop: str) -> None:
    """asyncio's loop sends it with sendfile(2); uvloop has none, the
    gateway then reads the file in blocks."""
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}", "--loop", loop]):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(2):  # and the connection stays in step after it
            conn.request("GET", "/file")
            response = conn.getresponse()
            assert response.getheader("Content-Length") == "301200"
            assert response.read() == bytes(range(251)) * 1200
        conn.request("HEAD", "/file")
        response = conn.getresponse()
        assert response.read() == b""
        conn.request("GET", "/hello")
        assert conn.getresponse().read() == b"Hello world\n"


def test_ipv6_listener() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    port = free_port()
    with Server(["--http", f"[::1]:{port}"], wait=[]) as srv:
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = http.client.HTTPConnection("::1", port, timeout=5)
                conn.request("GET", "/echo")
                break
            except OSError:
                assert time.monotonic() < deadline, srv.log()
                time.sleep(0.05)
        response = conn.getresponse()
        assert response.status == 200
        assert b'"REMOTE_ADDR": "::1"' in response.read()


def test_slow_reader_pauses_the_app() -> None:
    """Backpressure: a client that stops reading stops the app's iterator
    after about write_buffer bytes (plus the kernel's socket buffers); when it
    leaves, the app's close() is called."""
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}", "--write-buffer", "256k"]) as srv:
        sock = connect(f"127.0.0.1:{port}")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # not reading
        first = int(srv.path("produced").read_text())
        time.sleep(0.5)
        second = int(srv.path("produced").read_text())
        assert second == first, "the app kept producing while the client did not read"
        assert first < 16 * 1024 * 1024, first  # of the 200 MiB it would produce
        print(f"produced while stalled: {first} bytes")
        sock.close()
        deadline = time.monotonic() + 10
        while not (srv.path("closed").exists() and "flood" in srv.path("closed").read_text()):
            assert time.monotonic() < deadline, "close() not called after the client left"
            time.sleep(0.02)
