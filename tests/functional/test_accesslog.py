"""The access log (--access-log, --access-log-format) and the error log
(--error-log) of a real server: formats, fields, several workers sharing a
file, and SIGUSR1 reopening both after logrotate moved them.  The formats
alone, in-process, are in tests/unit/test_accesslog.py."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import time

import pytest

from dumbwaiter.accesslog import check_format
from serving import Server, free_port, run_cli, short_tmpdir

COMBINED = re.compile(
    r"^(?P<host>\S+) - (?P<user>\S+) \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    r'"(?P<method>\S+) (?P<uri>\S+) (?P<protocol>\S+)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'"(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$'
)


def read_lines(path: str, count: int, seconds: float = 5.0) -> list[str]:
    """The file's lines once there are ``count`` (lines are flushed each second)."""
    deadline = time.monotonic() + seconds
    lines: list[str] = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                lines = f.read().splitlines()
            if len(lines) >= count:
                break
        time.sleep(0.1)
    return lines


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def get(port: int, path: str, **headers: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def test_a_bad_format_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="unknown field 'nope'"):
        check_format("{status} {nope}")
    result = run_cli(["--access-log-format", "{status} {nope}", "server_apps:app"])
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "dumbwaiter: error: --access-log-format: unknown field 'nope' in the access log "
        "format (got '{status} {nope}')"
    )


def test_combined_lines_from_several_workers_in_one_file() -> None:
    folder = short_tmpdir()
    path = os.path.join(folder, "access.log")
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--workers", "2", "--access-log", path]
    with Server(args, workdir=folder):
        for number in range(40):
            assert (
                get(port, f"/hello?n={number}", Referer="http://r/", **{"User-Agent": "t/1"}) == 200
            )
        assert get(port, "/error") == 500
        lines = read_lines(path, 41)
    assert len(lines) == 41
    parsed = [COMBINED.match(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m]
    hello = [m for m in parsed if m and m["uri"].startswith("/hello")]
    assert sorted(int(m["uri"].partition("=")[2]) for m in hello) == list(range(40))
    assert {(m["status"], m["bytes"], m["referer"], m["agent"]) for m in hello} == {
        ("200", "12", "http://r/", "t/1")
    }
    assert [m["status"] for m in parsed if m and m["uri"] == "/error"] == ["500"]


def test_json_fields_and_sigusr1_reopens_both_logs() -> None:
    folder = short_tmpdir()
    access, errors = os.path.join(folder, "access.log"), os.path.join(folder, "error.log")
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--access-log", access, "--error-log", errors]
    args += ["--access-log-format", "json"]
    with Server(args, workdir=folder) as server:
        assert get(port, "/hello") == 200
        (line,) = read_lines(access, 1)
        record = json.loads(line)
        assert record["status"] == 200 and record["bytes"] == 12
        assert record["gateway"] == "http" and record["listener"] == f"http 127.0.0.1:{port}"
        assert record["method"] == "GET" and record["uri"] == "/hello"
        assert record["remote_addr"] == "127.0.0.1"
        assert record["worker"] != server.proc.pid  # a worker of the master
        assert 0 <= record["queue_time"] <= record["request_time"] < 5
        assert "ready" in read_text(errors)
        assert "ready" not in server.log()  # the error log is the file, not stderr
        # logrotate: move both files, then SIGUSR1.
        os.rename(access, access + ".1")
        os.rename(errors, errors + ".1")
        server.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not os.path.exists(access) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert get(port, "/hello?after") == 200
        (after,) = read_lines(access, 1)
        assert json.loads(after)["uri"] == "/hello?after"
        assert len(read_lines(access + ".1", 1)) == 1
        assert "log files reopened" in read_text(errors)
