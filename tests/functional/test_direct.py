"""The default mode: application threads accept and serve the gateway
listeners' connections themselves, and the loop takes over what a thread
should not hold (a slow peer, a kept connection) and the connections that
come while no thread is free.  Real processes, real sockets; the protocols'
own suites (test_server_fastcgi.py, test_server_oneshot.py) run in this mode
and with --loop-only."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import signal
import socket
import threading
import time

from dumbwaiter.protocols import uwsgi
from serving import Server, children, connect, free_port, run_cli, short_tmpdir, until


def environ(path: str, query: str = "") -> dict[str, str]:
    return {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": path + ("?" + query if query else ""),
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.9",
    }


def ask(address: str, path: str, query: str = "", timeout: float = 10.0) -> tuple[int, bytes]:
    """One uwsgi request; (status, body), status 0 for no answer."""
    sock = connect(address, timeout)
    try:
        sock.sendall(uwsgi.encode_request(environ(path, query)))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError:
        return 0, b""
    finally:
        sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return 0, body
    return int(head[9:12]), body


def lines_in(path: str) -> int:
    return pathlib.Path(path).read_text().count("\n")


def test_direct_is_an_accepted_alias() -> None:
    """--direct still starts (one log line says it is the default now);
    with --loop-only it is a contradiction: one line, exit 2."""
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    with Server(["--direct", "--uwsgi", address], workdir=folder) as server:
        assert ask(address, "/hello") == (200, b"Hello world\n")
        assert until(lambda: "--direct: what it asked for is the default now" in server.log())
    result = run_cli(["--direct", "--loop-only", "--uwsgi", address, "server_apps:app"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--loop-only" in lines[0], result.stderr


def test_a_slow_peer_holds_no_thread_and_is_cut_off_at_header_timeout() -> None:
    """A peer that sends half a head is handed to the loop: the one thread
    serves others meanwhile; the loop cuts the slow one off at
    --header-timeout."""
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    args = ["--threads", "1", "--header-timeout", "2", "--uwsgi", address]
    log_file = os.path.join(folder, "access.log")
    with Server([*args, "--access-log", log_file], workdir=folder) as server:
        slow = connect(address)
        slow.sendall(uwsgi.encode_request(environ("/hello"))[:10])
        started = time.monotonic()
        for _ in range(20):
            assert ask(address, "/hello") == (200, b"Hello world\n")
        assert time.monotonic() - started < 1.5
        slow.settimeout(10)
        assert slow.recv(100) == b""  # closed by the server...
        cut_after = time.monotonic() - started
        assert 1.5 < cut_after < 4.0  # ...at the header timeout
        assert until(lambda: "still waiting for the whole head within 2s" in server.log())
        assert until(lambda: pathlib.Path(log_file).exists() and lines_in(log_file) >= 20)
        lines = pathlib.Path(log_file).read_text().splitlines()
        assert len(lines) == 20 and all('"GET /hello HTTP/1.1" 200 12' in line for line in lines)


def test_a_slow_upload_holds_no_thread() -> None:
    """A body that trickles in goes on on the loop: the one thread serves
    others meanwhile, and the app gets the whole body once it is in."""
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    with Server(["--threads", "1", "--uwsgi", address], workdir=folder):
        body = os.urandom(64 * 1024)
        request = uwsgi.encode_request(
            {**environ("/digest"), "REQUEST_METHOD": "POST", "CONTENT_TYPE": "x/y"}, body
        )
        slow = connect(address)
        head = len(request) - len(body)
        slow.sendall(request[: head + 1000])
        for _ in range(10):  # the thread is free for others
            assert ask(address, "/hello", timeout=2) == (200, b"Hello world\n")
        slow.sendall(request[head + 1000 :])
        data = b""
        while chunk := slow.recv(65536):
            data += chunk
        slow.close()
        answer = json.loads(data.partition(b"\r\n\r\n")[2])
        assert answer == {"body_length": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}


def test_a_full_worker_answers_503_at_once_from_the_loop() -> None:
    """Every thread held, the queue full: the loop accepts the next
    connection and answers 503 at once, without calling the app; the queued
    ones run once a thread frees."""
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    args = ["--threads", "2", "--queue-size", "1", "--no-master", "--uwsgi", address]
    with Server(args, workdir=folder) as server:
        results: dict[str, tuple[int, bytes]] = {}

        def call(name: str, query: str) -> threading.Thread:
            def run() -> None:
                results[name] = ask(address, "/block", query, timeout=15)

            thread = threading.Thread(target=run)
            thread.start()
            return thread

        def started() -> int:
            path = server.path("started")
            return path.read_text().count("\n") if path.exists() else 0

        held = [call(f"held-{n}", "go") for n in range(2)]
        assert until(lambda: started() == 2)
        queued = call("queued", "go")
        time.sleep(0.3)  # (read by the loop, waiting for a thread)
        began = time.monotonic()
        assert ask(address, "/block", "refused", timeout=5)[0] == 503
        assert time.monotonic() - began < 0.5
        assert "block refused" not in server.path("calls").read_text()
        server.path("go").write_text("")
        for thread in [*held, queued]:
            thread.join(15)
        assert [results[name] for name in ("held-0", "held-1", "queued")] == [
            (200, b"released\n")
        ] * 3
        assert ask(address, "/hello") == (200, b"Hello world\n")


def test_threads_serve_concurrently_and_a_timeout_answers_504() -> None:
    """Two requests in the app at once, each on its own thread; one held past
    --timeout is answered 504 by the loop, and the worker is replaced."""
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    args = ["--threads", "3", "--timeout", "2", "--graceful-timeout", "2"]
    with Server([*args, "--uwsgi", address], workdir=folder) as server:
        assert until(lambda: len(children(server.proc.pid)) == 1)
        first_worker = children(server.proc.pid)[0]
        results: dict[str, tuple[int, bytes]] = {}

        def call(name: str, path: str, query: str = "") -> threading.Thread:
            def run() -> None:
                results[name] = ask(address, path, query, timeout=15)

            thread = threading.Thread(target=run)
            thread.start()
            return thread

        together = [call(f"barrier-{n}", "/barrier") for n in range(2)]
        for thread in together:
            thread.join(15)
        assert results["barrier-0"] == results["barrier-1"] == (200, b"together\n")

        started = time.monotonic()
        hung = call("hung", "/hang", "never")
        hung.join(15)
        assert results["hung"][0] == 504, results
        assert time.monotonic() - started < 4.5  # --timeout 2 plus the 1 s tick
        assert "still in the app after 2s" in server.log()

        def new_worker() -> bool:
            status, body = ask(address, "/pid")
            return status == 200 and int(body) != first_worker

        assert until(new_worker, 10), server.log()


def test_graceful_stop_finishes_the_request_in_flight() -> None:
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    server = Server(["--no-master", "--uwsgi", address], workdir=folder)
    with server:
        results: dict[str, tuple[int, bytes]] = {}
        thread = threading.Thread(
            target=lambda: results.setdefault("held", ask(address, "/block", "go", timeout=15))
        )
        thread.start()
        assert until(lambda: server.path("started").exists())
        server.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.proc.poll() is None  # waiting for the request
        server.path("go").write_text("")
        thread.join(15)
        assert results["held"] == (200, b"released\n")
        assert server.proc.wait(10) == 0
        # Stopped: nothing accepts any more.
        try:
            refused = ask(address, "/hello", timeout=2)[0] == 0
        except OSError:
            refused = True
        assert refused


def test_max_requests_replaces_the_worker() -> None:
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    args = ["--max-requests", "5", "--max-requests-jitter", "0", "--uwsgi", address]
    with Server(args, workdir=folder) as server:
        pids: set[int] = set()
        deadline = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < deadline:
            status, body = ask(address, "/pid")
            if status == 200:
                pids.add(int(body))
        assert len(pids) >= 2, server.log()
        assert "(--max-requests)" in server.log()


def test_tcp_allow_from_and_the_access_log() -> None:
    """TCP: a peer --allow-from refuses is closed at once, an allowed one
    served; the connection number in the access log tells direct ones."""
    folder = short_tmpdir()
    port = free_port()
    log_file = os.path.join(folder, "access.log")

    def args(allowed: str) -> list[str]:
        return [
            "--uwsgi",
            f"127.0.0.1:{port}",
            "--allow-from",
            allowed,
            "--access-log",
            log_file,
            "--access-log-format",
            "json",
        ]

    with Server(args("10.0.0.0/8"), workdir=folder) as server:
        assert ask(f"127.0.0.1:{port}", "/hello")[0] == 0
        assert until(lambda: "refused connection from 127.0.0.1" in server.log())
    with Server(args("127.0.0.1"), workdir=folder):
        assert ask(f"127.0.0.1:{port}", "/hello") == (200, b"Hello world\n")
        assert until(lambda: os.path.exists(log_file) and os.path.getsize(log_file) > 0)
        with open(log_file) as f:
            record = json.loads(f.readline())
        assert record["connection"].startswith("d") and record["status"] == 200


def test_a_reset_on_tcp_tells_a_broken_response() -> None:
    """The app fails after its response began: over TCP the close-delimited
    uwsgi response ends with a reset, not a clean FIN."""
    port = free_port()
    with Server(["--uwsgi", f"127.0.0.1:{port}"]):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(uwsgi.encode_request(environ("/error-late")))
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
            ended = "fin"
        except ConnectionResetError:
            ended = "reset"
        sock.close()
        assert data.startswith(b"HTTP/1.1 200") and ended == "reset"


def test_a_front_that_stops_reading_is_dropped_at_write_timeout() -> None:
    """A thread blocked in a send is freed by the loop's tick after
    --write-timeout; the app's iterable is closed, the other thread serves on."""
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    args = ["--threads", "2", "--write-timeout", "2", "--no-master", "--uwsgi", address]
    with Server(args, workdir=folder) as server:
        stalled = connect(address)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(uwsgi.encode_request(environ("/flood")))
        started = time.monotonic()
        deadline = started + 15
        while time.monotonic() < deadline and "read nothing for 2s" not in server.log():
            assert ask(address, "/hello") == (200, b"Hello world\n")  # served meanwhile
            time.sleep(0.2)
        took = time.monotonic() - started
        assert "read nothing for 2s" in server.log()
        assert 2.0 < took < 6.0, took
        assert until(lambda: server.path("closed").exists(), 5)
        assert "flood" in server.path("closed").read_text()
        stalled.close()


def upload(address: str, path: str, body: bytes, cut: int = 0) -> tuple[int, bytes]:
    """A uwsgi POST; ``cut``: send only that many bytes of the body, then close."""
    request = uwsgi.encode_request(
        {**environ(path), "REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/octet-stream"},
        body,
    )
    sock = connect(address)
    try:
        if cut:
            sock.sendall(request[: len(request) - len(body) + cut])
            sock.close()
            return 0, b""
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    head, _, answer = data.partition(b"\r\n\r\n")
    return int(head[9:12]), answer


def test_large_bodies_reach_the_app_whole() -> None:
    """A uwsgi body larger than the first read reaches the app whole (read()),
    in blocks, or not at all, byte-exact; a peer gone mid-body costs only its
    own request."""
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    args = ["--threads", "2", "--uwsgi", address, "--read-timeout", "2"]
    with Server(args, workdir=folder) as server:
        body = os.urandom(5 * 1024 * 1024 + 7)
        digest = hashlib.sha256(body).hexdigest()
        status, answer = upload(address, "/digest", body)
        assert status == 200
        assert json.loads(answer) == {"body_length": len(body), "body_sha256": digest}
        status, answer = upload(address, "/echo", body)
        info = json.loads(answer)
        assert (info["body_length"], info["body_sha256"]) == (len(body), digest)
        assert info["CONTENT_LENGTH"] == str(len(body))
        # Not read by the app: drained, then a clean close and the next one.
        assert upload(address, "/hello", body) == (200, b"Hello world\n")
        assert upload(address, "/digest", body, cut=3 * 1024 * 1024) == (0, b"")
        assert until(lambda: "uwsgi request cut short" in server.log())
        assert upload(address, "/digest", b"x" * 300_000)[0] == 200


def test_metrics_count_direct_requests_from_every_thread() -> None:
    """The threads count into the worker's metrics (under its lock): 4
    threads, 200 requests from 8 clients at once, every one counted."""
    from clients import scrape, total

    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    metrics = free_port()
    args = ["--threads", "4", "--uwsgi", address, "--metrics", f"127.0.0.1:{metrics}"]
    with Server(args, workdir=folder):
        failures: list[int] = []

        def client() -> None:
            for _ in range(25):
                status = ask(address, "/hello")[0]
                if status != 200:
                    failures.append(status)

        clients = [threading.Thread(target=client) for _ in range(8)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(30)
        assert failures == []
        listener = f"uwsgi {address}"

        def counted() -> bool:
            requests = total(scrape(metrics), "dumbwaiter_requests_total", listener=listener)
            return requests == 200

        assert until(counted, 10)
