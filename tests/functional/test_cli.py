"""Start-up, stop and failure behaviour of the real command."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from serving import TESTS, Server, free_port, run_cli, short_tmpdir


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dumbwaiter: error: ")
    return lines[0]


def test_version() -> None:
    result = run_cli(["--version"])
    assert result.returncode == 0
    assert result.stdout.startswith("dumbwaiter ")


def test_missing_module() -> None:
    result = run_cli(["--http", f"127.0.0.1:{free_port()}", "no_such_module_here:app"])
    assert result.returncode == 1
    assert "cannot import module 'no_such_module_here'" in one_error_line(result)


def test_missing_attribute() -> None:
    result = run_cli(["--http", f"127.0.0.1:{free_port()}", "server_apps:nothing"])
    assert result.returncode == 1
    assert "has no attribute 'nothing'" in one_error_line(result)


def test_bad_option_value() -> None:
    result = run_cli(["--threads", "zero", "server_apps:app"])
    assert result.returncode == 2
    assert "--threads" in one_error_line(result)


def test_bad_address() -> None:
    result = run_cli(["--fastcgi", "nowhere", "server_apps:app"])
    assert result.returncode == 1
    assert "nowhere" in one_error_line(result)


def test_address_in_use_tcp() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["--http", f"127.0.0.1:{port}", "server_apps:app"])
    assert result.returncode == 1
    assert "address in use" in one_error_line(result)


def test_live_unix_socket_is_never_stolen() -> None:
    path = os.path.join(short_tmpdir(), "live.sock")
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(path)
        live.listen()
        result = run_cli(["--fastcgi", f"unix:{path}", "server_apps:app"])
        assert result.returncode == 1
        assert "address in use" in one_error_line(result)
        assert stat.S_ISSOCK(os.stat(path).st_mode)  # still theirs


def test_no_socket_left_behind_when_a_later_listener_fails() -> None:
    folder = short_tmpdir()
    path = os.path.join(folder, "app.sock")
    result = run_cli(
        [
            "--fastcgi",
            f"unix:{path}",
            "--fastcgi",
            "unix:/nonexistent/dir/x.sock",
            "server_apps:app",
        ]
    )
    assert result.returncode == 1
    one_error_line(result)
    assert not os.path.exists(path)


def test_stale_socket_replaced_mode_applied_and_removed_on_exit() -> None:
    folder = short_tmpdir()
    path = os.path.join(folder, "app.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # a file nobody listens on
    with Server(["--fastcgi", f"unix:{path}", "--socket-mode", "600"]) as server:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        code = server.stop()
    assert code == 0
    assert not os.path.exists(path)


def test_sigterm_finishes_requests_in_flight() -> None:
    port = free_port()
    server = Server(["--http", f"127.0.0.1:{port}", "--graceful-timeout", "10"])
    results: list[bytes] = []

    def held_request() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        conn.request("GET", "/block?go-term")
        results.append(conn.getresponse().read())

    thread = threading.Thread(target=held_request)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.path("started").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    server.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert server.proc.poll() is None  # still finishing
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    server.release("go-term")
    thread.join(15)
    assert results == [b"released\n"]
    assert server.proc.wait(10) == 0
    server.stop()


def test_default_is_http_on_port_8000_when_nothing_else() -> None:
    # Only meaningful if the port is free on this machine.
    with socket.socket() as probe:
        # As the server will: a connection of an earlier run in TIME_WAIT
        # must not count as the port being taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", 8000))
        except OSError:
            pytest.skip("port 8000 is taken on this machine")
    with Server([], wait=["127.0.0.1:8000"]) as server:
        conn = http.client.HTTPConnection("127.0.0.1", 8000, timeout=10)
        conn.request("GET", "/hello")
        assert conn.getresponse().read() == b"Hello world\n"
        assert "http://127.0.0.1:8000/" in server.log()


def test_python_dash_m_and_console_script_agree() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "dumbwaiter")
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=20, cwd=str(TESTS)
    )
    assert result.returncode == 0
    assert result.stdout == run_cli(["--version"]).stdout


def test_sigint_stops_at_once_even_with_a_request_held() -> None:
    port = free_port()
    server = Server(["--http", f"127.0.0.1:{port}", "--graceful-timeout", "30"])
    holder = threading.Thread(target=lambda: run_held(port), daemon=True)
    holder.start()
    deadline = time.monotonic() + 10
    while not server.path("started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    server.send_signal(signal.SIGINT)
    assert server.proc.wait(10) == 0
    assert time.monotonic() - started < 3  # not the 30 s of a graceful stop
    server.stop()


def run_held(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    conn.request("GET", "/block?never")
    with contextlib.suppress(Exception):
        conn.getresponse().read()
