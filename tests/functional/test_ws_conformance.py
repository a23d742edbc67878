"""The WebSocket conformance check (``wsconformance.py``: cases after the
Autobahn test suite's groups) against dumbwaiter serving its echo app
directly on an HTTP listener, one test per case so that a failure names it.

Two servers: one with ``--ws-max-size`` at the check's :data:`MAX_SIZE`,
one with ``--ws-no-compression`` too (group 13.3).  With
``DUMBWAITER_WS_CONFORMANCE=FILE`` (``docs/websocket-conformance.md``) a
run of every case writes its per-group table there."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from serving import Server, free_port
from wsconformance import (
    CASES,
    MAX_SIZE,
    Case,
    Result,
    Target,
    catalogue,
    report,
    run_case,
    update_doc,
)

APP = "wsconformance:app"
RESULTS: list[Result] = []


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[Target, list[Server]]]:
    port, plain = free_port(), free_port()
    args = ["--ws-max-size", str(MAX_SIZE)]
    with (
        Server(["--http", f"127.0.0.1:{port}", *args], APP) as server,
        Server(["--http", f"127.0.0.1:{plain}", *args, "--ws-no-compression"], APP) as other,
    ):
        yield (
            Target(("127.0.0.1", port), "/", MAX_SIZE, (("127.0.0.1", plain), "/")),
            [
                server,
                other,
            ],
        )
    doc = os.environ.get("DUMBWAITER_WS_CONFORMANCE")
    if doc and len(RESULTS) == len(CASES):
        update_doc(doc, "direct", report(RESULTS, "direct"))
        update_doc(doc, "cases", catalogue())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, target: tuple[Target, list[Server]]) -> None:
    where, servers = target
    result = run_case(case, where)
    RESULTS.append(result)
    if result.outcome == "skipped":
        pytest.skip(result.reason)
    if not result.passed:
        log = "\n".join(server.log()[-3000:] for server in servers)
        pytest.fail(f"{case.id} {case.title}:\n{result.reason}\n--- server log\n{log}")
