"""WebSockets through each real front server's HTTP proxy, configured with
exactly what `dumbwaiter config FRONT --http ADDR` prints: dumbwaiter serves
``apps/ws_chat.py`` on a loopback port and on a unix socket (for the fronts
that proxy to one), and through the front a client (``wsclient.py``, raw
frames) gets the subprotocol the app chose, its text and binary messages
back (1 MiB ones too), a pong for its ping, a chat message sent to both of
two clients, its close (4001 and a reason) answered and reported to the app,
and the app's own close (4002 "bye"); a plain GET still answers."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from dumbwaiter.frontconf import NginxSnippet
from integration.fronts import (
    Front,
    apache,
    apache_conf,
    caddy,
    caddy_conf,
    get,
    h2o,
    h2o_conf,
    haproxy,
    haproxy_conf,
    lighttpd,
    lighttpd_conf,
    nginx,
    nginx_conf,
)
from serving import Server, free_port, run_cli, short_tmpdir, until
from wsclient import BINARY, PING, PONG, TEXT, WSClient, header

pytestmark = pytest.mark.integration

APP = "apps.ws_chat:app"
MiB = 1024 * 1024


def nginx_parts(text: str) -> NginxSnippet:
    http = text.split("# --- in the http { } block\n")[1]
    http, server = http.split("# --- in the server { } block\n")
    return NginxSnippet(http, server)


Starts = Callable[[str, int, str], AbstractContextManager[Front]]
FRONTS: dict[str, Starts] = {
    "nginx": lambda root, port, text: nginx(root, port, nginx_conf(root, port, nginx_parts(text))),
    "haproxy": lambda root, port, text: haproxy(root, port, haproxy_conf(root, port, text)),
    "caddy": lambda root, port, text: caddy(root, port, caddy_conf(root, port, text)),
    "h2o": lambda root, port, text: h2o(root, port, h2o_conf(root, port, text)),
    "apache": lambda root, port, text: apache(root, port, apache_conf(root, port, text)),
    "lighttpd": lambda root, port, text: lighttpd(root, port, lighttpd_conf(root, port, text)),
}
#: (front, transport to dumbwaiter); lighttpd's mod_proxy needs HOST:PORT.
CASES = [
    (front, transport)
    for front in FRONTS
    for transport in ("tcp", "unix")
    if (front, transport) != ("lighttpd", "unix")
]


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[Server, dict[str, str]]]:
    """One dumbwaiter for the module: ws_chat on a port and a unix socket
    that Apache's www-data may open; the addresses by transport."""
    root = short_tmpdir()
    os.chmod(root, 0o755)
    addresses = {"tcp": f"127.0.0.1:{free_port()}", "unix": f"unix:{root}/app.sock"}
    args = ["--http", addresses["tcp"], "--http", addresses["unix"], "--socket-mode", "666"]
    with Server(args, APP, workdir=root) as server:
        yield server, addresses


@contextlib.contextmanager
def through(front: str, address: str) -> Iterator[tuple[Front, str]]:
    """``front`` running the config `dumbwaiter config FRONT --http ADDR`
    prints; with it, the Host header its site answers to."""
    done = run_cli(["config", front, "--http", address])
    assert done.returncode == 0, done.stderr
    root = short_tmpdir()
    os.chmod(root, 0o755)
    port = free_port()
    with FRONTS[front](root, port, done.stdout) as running:
        yield running, f"127.0.0.1:{port}"


def closes(running: Front) -> list[list[object]]:
    status, _, body = get(running, "/closes")
    assert status == 200, (status, body)
    reported: list[list[object]] = json.loads(body)
    return reported


@pytest.mark.parametrize(("front", "transport"), CASES, ids=[f"{f}-{t}" for f, t in CASES])
def test_websockets_through_the_front(
    front: str, transport: str, backend: tuple[Server, dict[str, str]]
) -> None:
    server, addresses = backend
    with through(front, addresses[transport]) as (running, host):
        where = ("127.0.0.1", running.port)
        status, _, body = get(running, "/")
        assert (status, body) == (200, b"ok"), running.log() + server.log()

        ws = WSClient.connect(where, "/echo", host=host, subprotocols=["chat.v2", "other"])
        assert header(ws.head, "sec-websocket-protocol") == "chat.v2", ws.head
        ws.send_text("héllo")
        assert ws.receive() == (TEXT, "héllo".encode())
        ws.send_bytes(bytes(range(256)))
        assert ws.receive() == (BINARY, bytes(range(256)))
        big_text = "0123456789abcdef" * (MiB // 16)
        ws.send_text(big_text)
        assert ws.receive() == (TEXT, big_text.encode())
        big = os.urandom(MiB)
        ws.send_bytes(big)
        assert ws.receive() == (BINARY, big)
        ws.send(PING, b"are you there")
        assert ws.receive() == (PONG, b"are you there")

        first = WSClient.connect(where, "/chat", host=host)
        second = WSClient.connect(where, "/chat", host=host)
        assert header(first.head, "sec-websocket-protocol") is None  # none offered
        first.send_text(f"hello all via {front}")
        for member in (first, second):
            assert member.receive() == (TEXT, f"hello all via {front}".encode())
        second.send_bytes(b"\x00\xffback")
        for member in (first, second):
            assert member.receive() == (BINARY, b"\x00\xffback")
        for member in (first, second):
            member.close()
            assert member.receive_close() == (1000, "")
            member.shut()

        reason = f"done with {front} over {transport} {time.monotonic_ns()}"
        ws.close(4001, reason)
        code, _ = ws.receive_close()
        assert code == 4001  # the close answered
        assert ws.at_eof()
        assert until(lambda: ["/echo", 4001, reason] in closes(running), 10), closes(running)

        ws = WSClient.connect(where, "/close-me", host=host, subprotocols=["only"])
        assert header(ws.head, "sec-websocket-protocol") == "only"
        ws.send_text("anything")
        assert ws.receive_close() == (4002, "bye")
        ws.close(4002, "bye")
        assert ws.at_eof()

        status, _, body = get(running, "/")
        assert (status, body) == (200, b"ok"), running.log() + server.log()
