"""The demo app through a real server (its pages, through wsgiref's
validator, are in tests/unit/test_demo.py)."""

from __future__ import annotations

import http.client

from serving import Server, free_port


def test_demo_streams_through_the_server() -> None:
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}"], "dumbwaiter.demo:app"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/stream")
        response = conn.getresponse()
        first = response.read1(65536)
        assert b"Ten lines" in first and b"line 10" not in first
        assert b"line 10" in response.read()
