"""The demo app through a real server (its pages, through wsgiref's
validator, are in tests/unit/test_demo.py)."""

from __future__ import annotations

import http.client

from serving import Server, free_port
from wsclient import TEXT, WSClient


def test_demo_streams_through_the_server() -> None:
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}"], "dumbwaiter.demo:app"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/stream")
        response = conn.getresponse()
        first = response.read1(65536)
        assert b"Ten lines" in first and b"line 10" not in first
        assert b"line 10" in response.read()


def test_the_asgi_demo_echoes_over_a_websocket() -> None:
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}"], "dumbwaiter.demo:asgi_app"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        home = conn.getresponse().read()
        assert b"ASGI application" in home and b"lifespan state" in home
        conn.request("GET", "/echo")
        assert b"new WebSocket" in conn.getresponse().read()
        conn.close()
        client = WSClient.connect(("127.0.0.1", port), "/ws", subprotocols=["echo"])
        assert b"Sec-WebSocket-Protocol: echo" in client.head.split(b"\r\n")
        assert client.receive() == (TEXT, b"hello from dumbwaiter")
        client.send_text("hi")
        assert client.receive() == (TEXT, b"1: hi")
        client.close()
        assert client.receive_close() == (1000, "")
