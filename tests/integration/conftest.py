"""The interop report: with ``DUMBWAITER_INTEROP_REPORT=FILE`` set, the
integration run writes its results as a front, protocol and check table
(``docs/interop.md`` is made this way; see its header for the command)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

FRONTS = ("lighttpd", "nginx", "apache", "caddy", "h2o", "haproxy")
PROTOCOLS = {
    "fastcgi": "FastCGI",
    "scgi": "SCGI",
    "uwsgi": "uwsgi",
    "http": "HTTP",
    "proxy": "HTTP",
}
RESULTS: list[tuple[str, str, str, str]] = []


def classify(nodeid: str) -> tuple[str, str, str]:
    """(front, protocol, check) from a test's id, e.g.
    ``test_apache.py::test_paths_and_query[scgi-prefix]``."""
    path, _, name = nodeid.partition("::")
    text = f"{os.path.basename(path)} {name}".lower()
    front = next((f for f in FRONTS if f in name.lower()), None)
    if front is None:
        front = next((f for f in FRONTS if f in text), "lighttpd")
    params = name.partition("[")[2].lower()
    protocol = next(
        (
            label
            for where in (params, text)  # a test's parameter says it best
            for key, label in PROTOCOLS.items()
            if re.search(rf"(?:^|[\W_]){key}(?:$|[\W_])", where)
        ),
        "FastCGI",
    )
    check = name.removeprefix("test_")
    return front, protocol, check


def pytest_runtest_logreport(report: Any) -> None:
    if "integration" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        front, protocol, check = classify(report.nodeid)
        outcome = report.outcome
        if outcome == "skipped":
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            outcome = f"skipped: {reason}"
        RESULTS.append((front, protocol, check, outcome))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("DUMBWAITER_INTEROP_REPORT")
    if not path or not RESULTS:
        return
    order = {front: number for number, front in enumerate(FRONTS)}
    rows = sorted(set(RESULTS), key=lambda r: (order.get(r[0], 99), r[1], r[2]))
    lines = [
        "# Interoperability: dumbwaiter behind real front servers",
        "",
        "Made by the integration tests, not by hand: each row is one test run",
        "through Debian's package of the front server, with the configuration",
        "`dumbwaiter config FRONTEND` prints. To remake it:",
        "",
        "    DUMBWAITER_INTEROP_REPORT=docs/interop.md .venv/bin/python -m pytest -q "
        "tests/integration",
        "",
        "| front | protocol | check | result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {f} | {p} | `{c}` | {o} |" for f, p, c, o in rows]
    passed = sum(1 for r in rows if r[3] == "passed")
    lines += ["", f"{passed} of {len(rows)} checks passed.", ""]
    with open(path, "w") as out:
        out.write("\n".join(lines))
