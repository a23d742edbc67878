"""Run as a CGI script: one request from the environment and stdin."""

from __future__ import annotations

import os
import subprocess
import sys

from serving import TESTS


def run_as_cgi(env: dict[str, str], body: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(TESTS),
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "test",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.1",
        "SCRIPT_NAME": "/cgi-bin/app",
        "QUERY_STRING": "",
    }
    base.update(env)
    # stdin is a pipe, not a listening socket: that is what selects CGI.
    return subprocess.run(
        [sys.executable, "-m", "dumbwaiter", "server_apps:app"],
        input=body,
        capture_output=True,
        env=base,
        timeout=30,
    )


def test_cgi_get() -> None:
    result = run_as_cgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/hello"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello world\n"
    )


def test_cgi_post_body_and_httpoxy() -> None:
    result = run_as_cgi(
        {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/echo",
            "CONTENT_LENGTH": "5",
            "CONTENT_TYPE": "text/plain",
            "HTTP_PROXY": "http://evil:1",
        },
        b"hello and more",
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200 OK")
    assert b'"body_length": 5' in body
    assert b'"SCRIPT_NAME": "/cgi-bin/app"' in body
    assert b'"HTTP_PROXY": null' in body  # httpoxy: never taken from a client


def test_cgi_app_error_is_500() -> None:
    result = run_as_cgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/error"})
    assert result.returncode == 0
    assert result.stdout.startswith(b"Status: 500 Internal Server Error\r\n")
    assert b"the app failed on purpose" in result.stderr


def test_cgi_error_after_head_fails_the_script() -> None:
    result = run_as_cgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/error-late"})
    assert result.returncode == 1
    assert result.stdout.startswith(b"Status: 200 OK\r\n")
