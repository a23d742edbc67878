"""Elastic workers (--workers MIN:MAX) under a load ramp through nginx: the
workers grow while every thread is busy, shrink once idle, and no request
fails while they change."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time

import pytest

from dumbwaiter import frontconf
from integration.fronts import get, nginx, nginx_conf
from serving import Server, children, free_port, short_tmpdir, until

pytestmark = pytest.mark.integration


def fetch(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


class Ramp:
    """``clients`` threads requesting /sleep back to back through ``front``
    until stopped (bounded by ``seconds``), every answer recorded."""

    def __init__(self, front: object, clients: int, seconds: float = 40.0) -> None:
        self.front = front
        self.statuses: list[int] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.deadline = time.monotonic() + seconds
        self.threads = [threading.Thread(target=self.run) for _ in range(clients)]
        for thread in self.threads:
            thread.start()

    def run(self) -> None:
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            try:
                self.statuses.append(get(self.front, "/sleep?0.05")[0])  # type: ignore[arg-type]
            except OSError as exc:
                self.failures.append(repr(exc))

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)


def test_workers_follow_the_load() -> None:
    root = short_tmpdir()
    sock = os.path.join(root, "app.sock")
    args = ["--fastcgi", f"unix:{sock}", "--socket-mode", "666", "--threads", "2"]
    status = free_port()
    args += ["--status", f"127.0.0.1:{status}"]
    with Server([*args, "--workers", "1:3", "--workers-idle", "2"], workdir=root) as backend:
        master = backend.proc.pid
        port = free_port()
        config = nginx_conf(root, port, frontconf.nginx("fastcgi", f"unix:{sock}"))
        with nginx(root, port, config) as front:
            counts: list[tuple[float, int]] = []
            sampling = threading.Event()

            def sample() -> None:
                start = time.monotonic()
                while not sampling.is_set() and time.monotonic() - start < 90:
                    counts.append((time.monotonic() - start, len(children(master))))
                    time.sleep(0.25)

            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                light = Ramp(front, clients=1)  # one request at a time: 1 worker is plenty
                time.sleep(3)
                light.stop()
                assert len(children(master)) == 1
                heavy = Ramp(front, clients=12)
                try:
                    grew = until(lambda: len(children(master)) == 3, 30)
                finally:
                    heavy.stop()
                assert grew, backend.log()
                document = json.loads(fetch(status, "/status.json"))
                assert document["target"] == 3
                assert document["scaling"]["min"] == 1 and document["scaling"]["max"] == 3
                assert document["scaling"]["why"].startswith("every thread busy")
                assert "dumbwaiter_workers_target 3\n" in fetch(status, "/metrics")
                shrank = until(lambda: len(children(master)) == 1, 40)
                assert shrank, backend.log()
            finally:
                sampling.set()
                sampler.join(5)
    for ramp in (light, heavy):
        assert ramp.failures == []
        assert set(ramp.statuses) == {200}
    assert max(count for _, count in counts) == 3
    log = backend.log()
    assert "every thread busy or requests queued for 2s: 2 worker(s) now" in log
    assert "every thread busy or requests queued for 2s: 3 worker(s) now" in log
    assert "the load fitted in 2 worker(s) for 2s: 2 worker(s) now" in log
    assert "the load fitted in 1 worker(s) for 2s: 1 worker(s) now" in log
