"""--metrics: a real Prometheus scrape of the master, parsed by
prometheus_client's own parser, summed over the workers, and never going
backwards across a reload."""

from __future__ import annotations

import http.client
import signal
import threading
import time

from clients import scrape, total
from serving import Server, free_port, run_cli, until


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Connection": "close"})
    response = conn.getresponse()
    response.read()
    return response.status


def test_a_scrape_sums_the_workers_and_never_goes_backwards() -> None:
    port, metrics = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--workers", "2", "--metrics", f"127.0.0.1:{metrics}"]
    with Server(args) as server:
        listener = f"http 127.0.0.1:{port}"
        for _ in range(30):
            assert get(port, "/hello") == 200
        for _ in range(3):
            assert get(port, "/error") == 500

        def counted(ok: int, errors: int) -> bool:
            samples = scrape(metrics)
            return (
                total(samples, "dumbwaiter_requests_total", listener=listener, status="2xx") == ok
                and total(samples, "dumbwaiter_requests_total", status="5xx") == errors
            )

        assert until(lambda: counted(30, 3), 10), scrape(metrics)
        samples = scrape(metrics)
        assert total(samples, "dumbwaiter_request_duration_seconds_count") == 33
        assert total(samples, "dumbwaiter_request_duration_seconds_bucket", le="+Inf") == 33
        assert total(samples, "dumbwaiter_sent_bytes_total") >= 30 * 12
        assert total(samples, "dumbwaiter_workers") == 2
        # (each worker sends its gauges once a second: the second may not yet
        # have when the first one's counts are in)
        assert until(lambda: len(scrape(metrics)["dumbwaiter_worker_resident_bytes"]) == 2, 10)
        samples = scrape(metrics)
        assert all(value > 1 << 20 for _, value in samples["dumbwaiter_worker_resident_bytes"])
        # A reload replaces both workers: their counts are kept.
        server.send_signal(signal.SIGHUP)
        assert until(lambda: "reloaded" in server.log(), 15)
        before = total(scrape(metrics), "dumbwaiter_requests_total")
        assert before == 33
        for _ in range(10):
            assert get(port, "/hello") == 200
        assert until(lambda: counted(40, 3), 10), scrape(metrics)
        samples = scrape(metrics)
        assert total(samples, "dumbwaiter_worker_restarts_total", reason="reload") == 2
        conn = http.client.HTTPConnection("127.0.0.1", metrics, timeout=10)
        conn.request("GET", "/")
        assert conn.getresponse().status == 404


def test_scrapes_while_workers_recycle_only_go_up() -> None:
    port, metrics = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--max-requests", "15"]
    args += ["--metrics", f"127.0.0.1:{metrics}"]
    with Server(args):
        seen = []
        deadline = time.monotonic() + 20
        sent = 0
        while sent < 60 and time.monotonic() < deadline:
            assert get(port, "/hello") == 200
            sent += 1
            if sent % 5 == 0:
                seen.append(total(scrape(metrics), "dumbwaiter_requests_total"))
        assert seen == sorted(seen)  # never backwards
        assert until(lambda: total(scrape(metrics), "dumbwaiter_requests_total") == 60, 10)
        # A retired worker serves on until its replacement is ready: at least one went.
        samples = scrape(metrics)
        assert total(samples, "dumbwaiter_worker_restarts_total", reason="max-requests") >= 1


def test_metrics_need_the_master() -> None:
    result = run_cli(["--no-master", "--metrics", "127.0.0.1:9", "server_apps:app"])
    assert result.returncode == 2
    assert "--metrics is served by the master" in result.stderr


def test_healthz_turns_503_while_draining() -> None:
    port, metrics = free_port(), free_port()
    args = ["--http", f"127.0.0.1:{port}", "--metrics", f"127.0.0.1:{metrics}"]
    with Server([*args, "--graceful-timeout", "20"]) as server:
        assert until(lambda: get(metrics, "/healthz") == 200, 10)
        held = threading.Thread(target=get, args=(port, "/block?go"))
        held.start()
        assert until(lambda: server.path("started").exists(), 10)
        server.send_signal(signal.SIGTERM)  # the master drains: the request is still in flight
        assert until(lambda: get(metrics, "/healthz") == 503, 10)
        conn = http.client.HTTPConnection("127.0.0.1", metrics, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"draining\n"
        server.release("go")
        held.join(10)
        assert server.proc.wait(10) == 0
