"""A real dumbwaiter process serving FastCGI, driven by the sans-IO client
over real unix and TCP sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from clients import FCGI, params
from dumbwaiter.protocols import Role
from dumbwaiter.protocols.fastcgi_client import (
    GetValuesResult,
    UnknownType,
)
from serving import TESTS, Server, connect, free_port, short_tmpdir, until


@pytest.fixture(scope="module", params=["default", "loop-only"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Served as by default (threads serve a connection's one request
    themselves, kept connections go on on the loop), and by the loop only."""
    folder = short_tmpdir()
    address = f"unix:{folder}/fcgi.sock"
    port = free_port()
    with Server(
        [
            *(["--loop-only"] if request.param == "loop-only" else []),
            "--fastcgi",
            address,
            "--fastcgi",
            f"127.0.0.1:{port}",
            "--http",
            f"127.0.0.1:{free_port()}",
            "--threads",
            "4",
            "--max-header-bytes",
            "4k",
            "--max-body",
            "1M",
        ],
        workdir=folder,
    ) as srv:
        srv.address = address  # type: ignore[attr-defined]
        srv.tcp = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
        yield srv


def open_fcgi(server: Server, tcp: bool = False) -> FCGI:
    return FCGI(connect(server.tcp if tcp else server.address))  # type: ignore[attr-defined]


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_hello(server: Server, tcp: bool) -> None:
    conn = open_fcgi(server, tcp)
    reply = conn.reply(conn.start(params("/hello")))
    assert (reply.status, reply.body) == (200, b"Hello world\n")
    assert (reply.app_status, reply.protocol_status) == (0, 0)
    conn.pump(lambda: conn.closed)  # no FCGI_KEEP_CONN: the server closes
    assert conn.closed


def test_environ_and_body(server: Server) -> None:
    conn = open_fcgi(server)
    body = os.urandom(300_000)  # several STDIN records, spooled past the threshold? no: 1M
    rid = conn.start(
        params(
            "/echo",
            "POST",
            "a=1",
            CONTENT_LENGTH=str(len(body)),
            CONTENT_TYPE="application/octet-stream",
        ),
        body,
    )
    info = json.loads(conn.reply(rid).body)
    assert info["body_length"] == len(body)
    assert info["REMOTE_ADDR"] == "192.0.2.7"
    assert info["PATH_INFO"] == "/echo" and info["QUERY_STRING"] == "a=1"


def test_keep_conn_serves_many_on_one_connection(server: Server) -> None:
    conn = open_fcgi(server)
    for _ in range(5):
        reply = conn.reply(conn.start(params("/hello"), keep_conn=True))
        assert reply.body == b"Hello world\n"
    assert not conn.closed
    conn.close()


def test_multiplexed_requests_run_concurrently(server: Server) -> None:
    conn = open_fcgi(server)
    first = conn.start(params("/barrier"), keep_conn=True)
    second = conn.start(params("/barrier"), keep_conn=True)
    assert conn.reply(first).body == b"together\n"
    assert conn.reply(second).body == b"together\n"
    conn.close()


def test_get_values(server: Server) -> None:
    conn = open_fcgi(server)
    conn.send(
        conn.client.send_get_values(
            ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "NO_SUCH_NAME"]
        )
    )
    conn.pump(lambda: any(isinstance(e, GetValuesResult) for e in conn.other))
    result = next(e for e in conn.other if isinstance(e, GetValuesResult))
    assert result.values == {
        "FCGI_MAX_CONNS": "1028",
        "FCGI_MAX_REQS": "1028",
        "FCGI_MPXS_CONNS": "1",
    }
    conn.close()


def test_unknown_management_record(server: Server) -> None:
    conn = open_fcgi(server)
    conn.send(struct.pack(">BBHHBx", 1, 99, 0, 0, 0))
    conn.pump(lambda: any(isinstance(e, UnknownType) for e in conn.other))
    assert [e.record_type for e in conn.other if isinstance(e, UnknownType)] == [99]
    conn.close()


def test_authorizer_with_and_without_stdin(server: Server) -> None:
    for stdin in (True, False):  # lighttpd sends an empty STDIN; mod_authnz_fcgi none
        conn = open_fcgi(server)
        good = params("/authorize", HTTP_AUTHORIZATION="Bearer good", FCGI_ROLE="AUTHORIZER")
        reply = conn.reply(conn.start(good, role=Role.AUTHORIZER, stdin=stdin, keep_conn=True))
        assert reply.status == 200 and reply.headers["variable-x-user"] == "alice"
        bad = params("/authorize", FCGI_ROLE="AUTHORIZER")
        reply = conn.reply(conn.start(bad, role=Role.AUTHORIZER, stdin=stdin))
        assert reply.status == 401 and reply.body == b"no\n"
        conn.close()


def test_filter_role_gets_the_data_stream(server: Server) -> None:
    conn = open_fcgi(server)
    data = b"<p>file to filter</p>"
    rid = conn.start(
        params("/echo", FCGI_DATA_LENGTH=str(len(data)), FCGI_DATA_LAST_MOD="1700000000"),
        b"stdin",
        role=Role.FILTER,
        data=data,
    )
    info = json.loads(conn.reply(rid).body)
    assert info["fcgi_data"] == data.decode()
    assert info["dumbwaiter.fcgi_role"] == "FILTER"
    assert info["body_length"] == 5


def test_abort_closes_the_app_and_ends_the_request(server: Server) -> None:
    conn = open_fcgi(server)
    rid = conn.start(params("/stream", query="never-released"), keep_conn=True)
    conn.pump(lambda: b"first" in conn.stdout[rid])
    conn.send(conn.client.send_abort(rid))
    reply = conn.reply(rid, timeout=3)  # at once, though the app is still held
    assert reply.body.startswith(b"first")
    server.release("never-released")  # the app's next yield finds it cancelled
    deadline = time.monotonic() + 10
    while "stream" not in (
        server.path("closed").read_text() if server.path("closed").exists() else ""
    ):
        assert time.monotonic() < deadline, "close() of the app's iterable was not called"
        time.sleep(0.02)
    # The connection goes on serving, and "last" was never sent.
    assert conn.reply(conn.start(params("/hello"), keep_conn=True)).body == b"Hello world\n"
    assert b"last" not in conn.stdout[rid]
    conn.close()


def test_app_error_is_500_and_late_error_breaks_the_response(server: Server) -> None:
    conn = open_fcgi(server)
    assert conn.reply(conn.start(params("/error"))).status == 500
    conn = open_fcgi(server)
    rid = conn.start(params("/error-late"))
    conn.pump(lambda: conn.closed or rid in conn.ended)
    assert rid not in conn.ended  # no FCGI_END_REQUEST: the front sees a broken response
    assert conn.closed


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP on a FastCGI socket: bad version byte
        struct.pack(">BBHHBx", 2, 1, 1, 8, 0) + b"\0" * 8,  # FastCGI version 2
        struct.pack(">BBHHBx", 1, 1, 1, 8, 0) + b"\0\1\0",  # truncated, then EOF
    ],
    ids=["http", "version-2", "truncated"],
)
def test_bad_input_closes_that_connection_only(server: Server, garbage: bytes) -> None:
    conn = open_fcgi(server)
    conn.send(garbage)
    conn.sock.shutdown(socket.SHUT_WR)
    conn.pump(lambda: conn.closed)
    assert conn.closed
    other = open_fcgi(server)
    assert other.reply(other.start(params("/hello"))).body == b"Hello world\n"


def test_oversized_params_close_the_connection(server: Server) -> None:
    conn = open_fcgi(server)
    conn.start(params("/hello", HTTP_COOKIE="x" * 5000))
    conn.pump(lambda: conn.closed)
    assert conn.closed and not conn.ended
    assert "431" in server.log() or "params" in server.log().lower()
    other = open_fcgi(server)
    assert other.reply(other.start(params("/hello"))).body == b"Hello world\n"


def test_client_vanishing_mid_body(server: Server) -> None:
    conn = open_fcgi(server)
    rid = conn.client.begin_request(Role.RESPONDER)
    conn.send(
        conn.client.send_begin(rid)
        + conn.client.send_params(rid, params("/echo"))
        + conn.client.send_params(rid, {})
        + conn.client.send_stdin(rid, b"part")
    )
    conn.close()
    other = open_fcgi(server)
    assert other.reply(other.start(params("/hello"))).body == b"Hello world\n"


def test_overload_answers_503_without_calling_the_app() -> None:
    folder = short_tmpdir()
    address = f"unix:{folder}/busy.sock"
    with Server(
        ["--fastcgi", address, "--threads", "1", "--queue-size", "1"], workdir=folder
    ) as server:
        held = open_fcgi_at(address)
        first = held.start(params("/block", query="go-1"))
        deadline = time.monotonic() + 10
        while not server.path("started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        queued = open_fcgi_at(address)
        second = queued.start(params("/block", query="go-1"))
        time.sleep(0.2)
        for _ in range(3):
            busy = open_fcgi_at(address)
            started = time.monotonic()
            reply = busy.reply(busy.start(params("/count")))
            assert time.monotonic() - started < 1.0
            assert reply.status == 503 and reply.headers["retry-after"] == "1"
        assert [c for c in server.calls() if c.startswith("block") or c == ""] == ["block go-1"]
        assert not any(c == "" for c in server.calls())  # /count never ran
        server.release("go-1")
        assert held.reply(first).body == b"released\n"
        assert queued.reply(second).body == b"released\n"


def open_fcgi_at(address: str) -> FCGI:
    return FCGI(connect(address))


def queue_depth(metrics_port: int) -> int:
    """The worker's requests waiting for a thread, as its last stats report said."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    return sum(
        int(float(line.rpartition(" ")[2]))
        for line in text.splitlines()
        if line.startswith("dumbwaiter_queue_depth{")
    )


@pytest.mark.parametrize(("read_ahead", "queued"), [(0, 12), (3, 3)])
def test_read_ahead_leaves_new_connections_unread_until_a_thread_frees(
    read_ahead: int, queued: int
) -> None:
    """One thread, held; 12 more requests on their own connections.  With
    --read-ahead 3 the worker reads 3 of them and leaves 9 in the kernel (its
    queue shows 3, not 12); once the thread is free every one is answered."""
    folder = short_tmpdir()
    address = f"unix:{folder}/ahead.sock"
    metrics = free_port()
    args = ["--fastcgi", address, "--threads", "1", "--read-ahead", str(read_ahead)]
    with Server([*args, "--metrics", f"127.0.0.1:{metrics}"], workdir=folder) as server:
        held = open_fcgi_at(address)
        first = held.start(params("/block", query="go-1"))
        assert until(lambda: server.path("started").exists())
        waiting = [open_fcgi_at(address) for _ in range(12)]
        rids = [conn.start(params("/count", query=str(n))) for n, conn in enumerate(waiting)]
        assert until(lambda: queue_depth(metrics) == queued, seconds=10), queue_depth(metrics)
        time.sleep(1.2)  # a second stats report: still so
        assert queue_depth(metrics) == queued
        server.release("go-1")
        assert held.reply(first).body == b"released\n"
        for conn, rid in zip(waiting, rids, strict=True):
            assert conn.reply(rid).body == b"counted\n"
        assert sorted(server.calls()[1:], key=int) == [str(n) for n in range(12)]


def test_requests_left_unread_are_served_by_a_graceful_stop() -> None:
    """SIGTERM while requests wait unread (--read-ahead 1): accepted before
    the stop, so each is read and answered before the worker ends."""
    folder = short_tmpdir()
    address = f"unix:{folder}/drain.sock"
    args = ["--fastcgi", address, "--threads", "1", "--read-ahead", "1", "--no-master"]
    with Server(args, workdir=folder) as server:
        held = open_fcgi_at(address)
        first = held.start(params("/block", query="go-1"))
        assert until(lambda: server.path("started").exists())
        waiting = [open_fcgi_at(address) for _ in range(5)]
        rids = [conn.start(params("/count", query=str(n))) for n, conn in enumerate(waiting)]
        time.sleep(0.3)  # read: the first of them; the other four left unread
        assert server.calls() == ["block go-1"]
        server.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        server.release("go-1")
        assert held.reply(first).body == b"released\n"
        for conn, rid in zip(waiting, rids, strict=True):
            assert conn.reply(rid).body == b"counted\n"
        assert server.proc.wait(10) == 0
        assert sorted(server.calls()[1:], key=int) == [str(n) for n in range(5)]


@pytest.mark.parametrize(("budget", "queued"), [("0", 11), ("1M", 1)])
def test_read_ahead_bytes_bounds_the_bodies_waiting_for_threads(budget: str, queued: int) -> None:
    """One thread, held by a request with a 700 KB body, a second such request
    queued: 1.4 MB of bodies handed to the pool.  With --read-ahead-bytes 1M
    the ten small requests after them are left unread; all are answered."""
    folder = short_tmpdir()
    address = f"unix:{folder}/bytes.sock"
    metrics = free_port()
    args = ["--fastcgi", address, "--threads", "1", "--read-ahead", "0"]
    args += ["--read-ahead-bytes", budget, "--metrics", f"127.0.0.1:{metrics}"]
    with Server(args, workdir=folder) as server:
        big = [open_fcgi_at(address) for _ in range(2)]
        held = [conn.start(params("/block", "POST", "go-1"), b"x" * 700_000) for conn in big[:1]]
        assert until(lambda: server.path("started").exists())
        held.append(big[1].start(params("/block", "POST", "go-1"), b"y" * 700_000))
        assert until(lambda: queue_depth(metrics) == 1, seconds=10)
        small = [open_fcgi_at(address) for _ in range(10)]
        rids = [conn.start(params("/count", query=str(n))) for n, conn in enumerate(small)]
        assert until(lambda: queue_depth(metrics) == queued, seconds=10), queue_depth(metrics)
        time.sleep(1.2)  # a second stats report: still so
        assert queue_depth(metrics) == queued
        server.release("go-1")
        for conn, rid in zip(big, held, strict=True):
            assert conn.reply(rid).body == b"released\n"
        for conn, rid in zip(small, rids, strict=True):
            assert conn.reply(rid).body == b"counted\n"


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_read_ahead_keeps_the_queue_bound_and_its_503s(read_ahead: int) -> None:
    """--threads 1 --queue-size 4: one running, four waiting, every further
    request a 503 at once, whether the waiting ones were read or left unread."""
    folder = short_tmpdir()
    address = f"unix:{folder}/bound.sock"
    args = ["--fastcgi", address, "--threads", "1", "--queue-size", "4"]
    with Server([*args, "--read-ahead", str(read_ahead)], workdir=folder) as server:
        held = open_fcgi_at(address)
        first = held.start(params("/block", query="go-1"))
        assert until(lambda: server.path("started").exists())
        waiting = []
        for n in range(8):
            conn = open_fcgi_at(address)
            waiting.append((conn, conn.start(params("/count", query=str(n)))))
            time.sleep(0.05)  # in this order
        refused = [conn.reply(rid, timeout=2.0).status for conn, rid in waiting[4:]]
        assert refused == [503] * 4
        server.release("go-1")
        assert held.reply(first).body == b"released\n"
        assert [conn.reply(rid).status for conn, rid in waiting[:4]] == [200] * 4
        assert server.calls()[1:] == ["0", "1", "2", "3"]


def test_web_server_spawned_on_fd0() -> None:
    """lighttpd's bin-path and mod_fcgid hand a listening socket on fd 0."""
    folder = short_tmpdir()
    path = os.path.join(folder, "spawned.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    env = dict(os.environ, PYTHONPATH=str(TESTS), DW_TEST_DIR=folder)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dumbwaiter", "server_apps:app"],
        stdin=listener.fileno(),
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    listener.close()
    try:
        conn = FCGI(connect(f"unix:{path}"))
        assert conn.reply(conn.start(params("/hello"))).body == b"Hello world\n"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_concurrent_clients_all_answered(server: Server) -> None:
    errors: list[str] = []

    def worker() -> None:
        try:
            for _ in range(20):
                conn = open_fcgi(server)
                if conn.reply(conn.start(params("/hello"))).body != b"Hello world\n":
                    errors.append("bad body")
                conn.close()
        except Exception as exc:  # collected and asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


@pytest.mark.parametrize(
    ("allowed", "served"), [("127.0.0.1, 10.0.0.1", True), ("10.0.0.1", False)]
)
def test_fcgi_web_server_addrs_on_an_inherited_tcp_socket(allowed: str, served: bool) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    env = dict(
        os.environ, PYTHONPATH=str(TESTS), DW_TEST_DIR=short_tmpdir(), FCGI_WEB_SERVER_ADDRS=allowed
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "dumbwaiter", "server_apps:app"],
        stdin=listener.fileno(),
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    listener.close()
    try:
        conn = FCGI(connect(f"127.0.0.1:{port}"))
        rid = conn.start(params("/hello"))
        if served:
            assert conn.reply(rid).body == b"Hello world\n"
        else:
            conn.pump(lambda: conn.closed)
            assert conn.closed and rid not in conn.ended
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert (b"not an allowed web server" in err) is not served
