"""Connection limits and timeouts, each at and past its limit, with a real
server: --max-connections, --header-timeout, --min-body-rate and
--write-timeout.  Each test also checks that a well-behaved client is still
served while the limit acts on the other."""

from __future__ import annotations

import http.client
import socket
import time

from serving import Server, connect, free_port


def hello(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/hello")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Wait for the server to close ``sock``; how long it took."""
    started = time.monotonic()
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return time.monotonic() - started


def trickle(sock: socket.socket, piece: bytes, every: float, limit: float) -> tuple[bool, float]:
    """Send ``piece`` each ``every`` seconds until the server closes the
    connection or ``limit`` passes: (closed, seconds it took)."""
    started = time.monotonic()
    sock.settimeout(every)
    while time.monotonic() - started < limit:
        try:
            sock.sendall(piece)
            if sock.recv(100) == b"":
                return True, time.monotonic() - started
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return True, time.monotonic() - started
    return False, time.monotonic() - started


def test_max_connections_leaves_the_rest_in_the_backlog() -> None:
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}", "--max-connections", "4", "--no-master"]) as srv:
        held = [connect(f"127.0.0.1:{port}") for _ in range(4)]
        time.sleep(0.3)  # all accepted
        waiting = connect(f"127.0.0.1:{port}")  # the kernel's backlog takes it
        waiting.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        waiting.settimeout(1.0)
        try:
            early = waiting.recv(100)
        except TimeoutError:
            early = b""
        assert early == b""  # not served while the worker is full
        assert "not accepting until some close" in srv.log()
        for sock in held[:2]:
            sock.close()
        waiting.settimeout(5)
        assert waiting.recv(100).startswith(b"HTTP/1.1 200")
        assert "accepting again" in srv.log()
        assert hello(port) == 200
        for sock in [*held[2:], waiting]:
            sock.close()


def test_at_max_connections_every_one_is_served() -> None:
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}", "--max-connections", "4", "--no-master"]) as srv:
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(3)]
        for conn in conns:
            conn.request("GET", "/hello")
            assert conn.getresponse().read() == b"Hello world\n"
        assert hello(port) == 200  # the fourth is served, then accepting pauses
        for conn in conns:
            conn.close()
        deadline = time.monotonic() + 5
        while "accepting again" not in srv.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hello(port) == 200


def test_a_head_trickling_in_is_cut_off_at_header_timeout() -> None:
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--header-timeout", "2", "--read-timeout", "30"]
    with Server(args) as srv:
        slow = connect(f"127.0.0.1:{port}")
        slow.sendall(b"GET /hello HTTP/1.1\r\n")
        closed, took = trickle(slow, b"X", every=0.3, limit=8)  # never silent for long
        assert closed and 1.5 < took < 4.5, took
        assert "still waiting for the whole head within 2s" in srv.log()
        # A head that arrives in time, even in pieces, is served.
        ok = connect(f"127.0.0.1:{port}")
        for piece in (b"GET /hello HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            ok.sendall(piece)
            time.sleep(0.4)
        ok.settimeout(5)
        assert ok.recv(100).startswith(b"HTTP/1.1 200")


def test_a_body_slower_than_min_body_rate_is_cut_off() -> None:
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--read-timeout", "2", "--min-body-rate", "1000"]
    with Server(args) as srv:
        slow = connect(f"127.0.0.1:{port}")
        slow.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        closed, took = trickle(slow, b"x" * 50, every=0.25, limit=10)  # 200 bytes/s
        # Due at 2 s + received/1000: about 2.5 s at 200 bytes/s (the tick adds up to 1 s).
        assert closed and 2.0 < took < 5.0, took
        assert "still waiting for the body at 1000 bytes/s" in srv.log()
        # A body at a decent rate is received whole.
        fast = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        fast.request("POST", "/echo", body=b"y" * 100000)
        assert fast.getresponse().status == 200


def test_a_reader_that_stops_reading_is_dropped_at_write_timeout() -> None:
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--write-timeout", "2", "--no-master"]
    with Server(args) as srv:
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        deadline = started + 15
        while time.monotonic() < deadline and "read nothing for 2s" not in srv.log():
            assert hello(port) == 200  # others are served meanwhile
            time.sleep(0.2)
        took = time.monotonic() - started
        assert "read nothing for 2s" in srv.log()
        assert 2.0 < took < 6.0, took
        # The application's iterable was closed: the flood stopped early.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not srv.path("closed").exists():
            time.sleep(0.05)
        assert "flood" in srv.path("closed").read_text()
        stalled.close()
