"""--status: the master's live status page, its JSON, /healthz and /metrics on
the same address, and the small HTTP server behind them (a client that
sends nothing never holds the master up).  The page itself is driven in a
real browser by tests/integration/test_status_page.py; its parts, in-process,
are in tests/unit/test_status.py."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from serving import Server, free_port, run_cli, until


def fetch(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def status(port: int) -> dict[str, Any]:
    code, headers, body = fetch(port, "/status.json")
    assert code == 200 and headers["Content-Type"] == "application/json"
    document: dict[str, Any] = json.loads(body)
    return document


def get(port: int, path: str) -> int:
    return fetch(port, path)[0]


def inflight(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [request for worker in document["workers"] for request in worker["inflight"]]


def test_status_json_shows_workers_requests_in_flight_and_the_recent_past() -> None:
    port, board = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--workers", "2", "--status", f"127.0.0.1:{board}"]
    with Server(args) as server:
        assert until(lambda: len(status(board)["workers"]) == 2, 10)
        for _ in range(40):
            assert get(port, "/hello") == 200
        held = threading.Thread(target=get, args=(port, "/block?go"))
        held.start()
        try:
            assert until(lambda: len(inflight(status(board))) == 1, 10), status(board)
            [request] = inflight(status(board))
            assert request["method"] == "GET" and request["path"] == "/block"
            assert request["state"] == "app" and request["client"] == "127.0.0.1"
            assert request["listener"] == f"http 127.0.0.1:{port}"
            first_age = request["age"]
            # The age grows while the request is held (the worker reports each second).
            assert until(lambda: inflight(status(board))[0]["age"] >= first_age + 1, 10)
            document = status(board)
            assert document["pid"] == server.proc.pid
            assert document["health"] == {"ok": True, "reason": "serving: 2 worker(s)"}
            assert document["listeners"] == [f"http 127.0.0.1:{port}"]
            workers = document["workers"]
            assert {w["state"] for w in workers} == {"serving"}
            assert sum(w["busy"] for w in workers) == 1
            assert all(w["threads"] == 8 and w["rss"] > 1 << 20 and w["age"] > 0 for w in workers)
            assert sum(w["served"] for w in workers) == 40
            assert document["totals"]["requests"] == 40
            assert document["totals"]["bytes_out"] >= 40 * 12
            history = document["history"]
            assert history["step"] == 1.0
            samples = len(history["times"])
            assert samples >= 2 and len(history["busy"]) == samples
            assert sum(history["requests"]) > 0  # the 40 requests showed up as a rate
            assert history["busy"][-1] == 1
        finally:
            server.release("go")
            held.join(10)
        assert until(lambda: inflight(status(board)) == [], 10)


def test_the_status_address_serves_the_page_healthz_and_metrics() -> None:
    port, board, metrics = free_port(), free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--status", f"127.0.0.1:{board}"]
    addresses = [f"127.0.0.1:{port}", f"127.0.0.1:{board}", f"127.0.0.1:{metrics}"]
    with Server([*args, "--metrics", f"127.0.0.1:{metrics}"], wait=addresses):
        assert until(lambda: get(board, "/healthz") == 200, 10)
        code, headers, page = fetch(board, "/")
        assert code == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert b'<script src="status.js"></script>' in page
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-store"
        code, headers, script = fetch(board, "/status.js")
        assert code == 200 and headers["Content-Type"].startswith("text/javascript")
        assert b"status.json" in script
        assert fetch(board, "/", "HEAD")[2] == b""
        assert fetch(board, "/", "POST")[0] == 405
        assert fetch(board, "/nothing-here")[0] == 404
        # HAProxy's default check is OPTIONS /healthz-style: any method works there.
        assert fetch(board, "/healthz", "OPTIONS")[0] == 200
        assert get(port, "/hello") == 200

        def counted() -> float:
            text = fetch(board, "/metrics")[2].decode()
            families = {f.name: f for f in text_string_to_metric_families(text)}
            return sum(s.value for s in families["dumbwaiter_requests"].samples)

        assert until(lambda: counted() == 1, 10)
        # The metrics address stays what it was: no status page there.
        assert fetch(metrics, "/")[0] == 404
        assert fetch(metrics, "/status.json")[0] == 404
        assert fetch(metrics, "/metrics")[0] == 200


def test_healthz_turns_503_when_every_thread_stays_busy() -> None:
    port, board = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--status", f"127.0.0.1:{board}"]
    with Server([*args, "--threads", "1", "--health-busy", "1"]) as server:
        assert until(lambda: get(board, "/healthz") == 200, 10)
        held = threading.Thread(target=get, args=(port, "/block?go"))
        held.start()
        try:
            assert until(lambda: get(board, "/healthz") == 503, 10)
            assert fetch(board, "/healthz")[2] == b"every thread busy for 1s\n"
            assert status(board)["health"]["ok"] is False
        finally:
            server.release("go")
            held.join(10)
        assert until(lambda: get(board, "/healthz") == 200, 10)


def test_a_silent_client_does_not_hold_up_the_master() -> None:
    port, board = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--status", f"127.0.0.1:{board}"]
    with Server(args) as server:
        assert until(lambda: get(board, "/healthz") == 200, 10)
        silent = [socket.create_connection(("127.0.0.1", board)) for _ in range(5)]
        trickle = socket.create_connection(("127.0.0.1", board))
        trickle.sendall(b"GET /status.json HTTP/1.1\r\n")
        try:
            started = time.monotonic()
            for _ in range(5):
                assert get(board, "/healthz") == 200
            assert time.monotonic() - started < 1.0
            # The master still does its own work: a worker killed now is replaced.
            [pid] = [w["pid"] for w in status(board)["workers"]]
            os.kill(pid, signal.SIGKILL)
            assert until(lambda: [w["pid"] for w in status(board)["workers"]] not in ([pid], []))
            # Each silent connection is closed at its deadline (5 s).
            for sock in [*silent, trickle]:
                sock.settimeout(10)
                assert sock.recv(100) == b""
        finally:
            for sock in [*silent, trickle]:
                sock.close()
        assert "died" in server.log()


def test_a_status_address_needs_the_master_and_its_own_address() -> None:
    result = run_cli(["--no-master", "--status", "127.0.0.1:9", "server_apps:app"])
    assert result.returncode == 2
    assert "--status is served by the master" in result.stderr
    same = "127.0.0.1:9"
    result = run_cli(["--status", same, "--metrics", same, "server_apps:app"])
    assert result.returncode == 2
    assert "give --metrics another address" in result.stderr
