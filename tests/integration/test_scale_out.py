"""Several dumbwaiter instances (standing in for machines) behind nginx's
upstream and HAProxy's backend balancing: spread, a stopped instance routed
around, and a full instance's 503 retried on another."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from dumbwaiter import frontconf
from integration.fronts import Front, fetch, haproxy, haproxy_conf, nginx, nginx_conf
from serving import Server, free_port, run_cli, short_tmpdir

pytestmark = pytest.mark.integration

BALANCERS = ["nginx", "haproxy"]


@contextlib.contextmanager
def cluster(
    balancer: str, count: int, extra: list[str] | None = None
) -> Iterator[tuple[Front, list[Server]]]:
    instances = []
    addresses = []
    try:
        for _ in range(count):
            address = f"127.0.0.1:{free_port()}"
            addresses.append(address)
            instances.append(Server(["--fastcgi", address, *(extra or [])], workdir=short_tmpdir()))
        root = short_tmpdir()
        port = free_port()
        if balancer == "nginx":
            config = nginx_conf(root, port, frontconf.nginx("fastcgi", addresses))
            running = nginx(root, port, config)
        else:
            config = haproxy_conf(root, port, frontconf.haproxy("fastcgi", addresses))
            running = haproxy(root, port, config)
        with running as front:
            yield front, instances
    finally:
        for instance in instances:
            instance.stop()


@pytest.mark.parametrize("balancer", BALANCERS)
def test_requests_spread_over_every_instance(balancer: str) -> None:
    with cluster(balancer, 3) as (front, instances):
        pids = {int(fetch(front, "/pid")[1]) for _ in range(30)}
        assert len(pids) == 3
        assert all(sum(instance.serves(pid) for pid in pids) == 1 for instance in instances)


@pytest.mark.parametrize("balancer", BALANCERS)
def test_a_stopped_instance_is_routed_around(balancer: str) -> None:
    with cluster(balancer, 3) as (front, instances):
        statuses: list[int] = []
        done = threading.Event()

        def load() -> None:
            deadline = time.monotonic() + 15
            while not done.is_set() and time.monotonic() < deadline and len(statuses) < 3000:
                statuses.append(fetch(front, "/hello")[0])

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.5)
        stopped = instances[1]
        assert stopped.stop() == 0
        time.sleep(1.0)
        done.set()
        worker.join(30)
        assert len(statuses) > 50
        assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
        after = {int(fetch(front, "/pid")[1]) for _ in range(12)}
        running = [instance for instance in instances if instance is not stopped]
        assert len(after) == 2
        assert all(any(instance.serves(pid) for instance in running) for pid in after)


@pytest.mark.parametrize("balancer", BALANCERS)
def test_a_full_instances_503_is_retried_elsewhere(balancer: str) -> None:
    with cluster(balancer, 2, ["--threads", "1", "--queue-size", "0"]) as (front, instances):
        busy, other = instances
        # Fill `busy` directly (not through nginx): one request held in its only thread.
        direct = threading.Thread(target=hold, args=(busy,))
        direct.start()
        deadline = time.monotonic() + 10
        while not busy.path("started").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        results = [fetch(front, "/count") for _ in range(10)]
        assert [status for status, _ in results] == [200] * 10
        assert busy.calls() == ["block go"]  # the held one only: no /count ran there
        assert len(other.calls()) == 10
        busy.release("go")
        direct.join(30)


def hold(server: Server) -> None:
    """One request held in the app, sent straight to the instance."""
    address = server.args[server.args.index("--fastcgi") + 1]
    run_cli(["request", address, "/block?go"], timeout=30)
