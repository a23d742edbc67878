"""A real dumbwaiter process serving SCGI and the uwsgi protocol."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from dumbwaiter.protocols import scgi, uwsgi
from serving import Server, connect, free_port, short_tmpdir, until

ENCODERS: dict[str, Callable[..., bytes]] = {
    "scgi": scgi.encode_request,
    "uwsgi": uwsgi.encode_request,
}


@pytest.fixture(scope="module", params=["default", "loop-only"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Served as by default (threads serve connections themselves), and by
    the loop only."""
    folder = short_tmpdir()
    with Server(
        [
            *(["--loop-only"] if request.param == "loop-only" else []),
            "--scgi",
            f"unix:{folder}/scgi.sock",
            "--uwsgi",
            f"unix:{folder}/uwsgi.sock",
            "--uwsgi",
            f"127.0.0.1:{free_port()}",
            "--max-body",
            "1M",
        ],
        workdir=folder,
    ) as srv:
        yield srv


def exchange(server: Server, kind: str, data: bytes) -> bytes:
    sock = connect(f"unix:{server.dir}/{kind}.sock")
    sock.sendall(data)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        chunks.append(b"<reset>")
    sock.close()
    return b"".join(chunks)


def environ(path: str, method: str = "GET") -> dict[str, str]:
    return {
        "REQUEST_METHOD": method,
        "REQUEST_URI": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "example.org",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.9",
        "DOCUMENT_URI": path.partition("?")[0],
    }


@pytest.mark.parametrize("kind", ENCODERS)
def test_request_and_body(server: Server, kind: str) -> None:
    body = os.urandom(200_000)
    data = exchange(server, kind, ENCODERS[kind](environ("/echo/x", "POST"), body))
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == (b"Status: 200 OK" if kind == "scgi" else b"HTTP/1.1 200 OK")
    info = json.loads(payload)
    # No PATH_INFO sent (nginx's scgi_params and uwsgi_params without it):
    # derived from REQUEST_URI.
    assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("", "/echo/x")
    assert info["body_length"] == len(body)
    assert info["REMOTE_ADDR"] == "192.0.2.9"


@pytest.mark.parametrize("kind", ENCODERS)
def test_streaming_error_and_garbage(server: Server, kind: str) -> None:
    assert b"500 Internal Server Error" in exchange(server, kind, ENCODERS[kind](environ("/error")))
    broken = exchange(server, kind, ENCODERS[kind](environ("/error-late")))
    # Unix sockets have no reset: the front sees a short body, nothing more.
    assert broken.endswith(b"partial ")
    garbage = exchange(server, kind, b"GARBAGE" * 3)
    assert garbage == b"" or b"400" in garbage.split(b"\r\n")[0]
    assert exchange(server, kind, ENCODERS[kind](environ("/hello"))).endswith(b"Hello world\n")


@pytest.mark.parametrize("kind", ENCODERS)
def test_body_over_the_limit(server: Server, kind: str) -> None:
    data = exchange(server, kind, ENCODERS[kind](environ("/echo", "POST"), b"x" * (1 << 20 + 1)))
    assert b"413" in data.split(b"\r\n")[0]


def test_uwsgi_over_tcp(server: Server) -> None:
    port = int(
        server.args[server.args.index("--uwsgi", server.args.index("--uwsgi") + 1) + 1].rpartition(
            ":"
        )[2]
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(uwsgi.encode_request(environ("/hello")))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"Hello world\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(uwsgi.encode_request(environ("/error-late")))
        with pytest.raises(ConnectionResetError):  # a broken response is a reset on TCP
            while sock.recv(65536):
                pass


def test_a_connection_accepted_as_the_stop_comes_is_served() -> None:
    """SIGTERM, then a connection, both waiting for the event loop (a thread
    of the app holds the GIL): the stop and the accept come in the same
    turns of the loop, and that request is still served before the worker
    exits (not closed unanswered, nor left in the closed listener's
    backlog)."""
    folder = short_tmpdir()
    args = ["--no-master", "--threads", "2", "--uwsgi", f"unix:{folder}/uwsgi.sock"]
    with Server(args, workdir=folder) as server:
        assert exchange(server, "uwsgi", uwsgi.encode_request(environ("/hog"))).endswith(
            b"hogging\n"
        )
        assert until(lambda: server.path("started").exists()), server.log()
        server.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # the loop has the signal to handle, and waits for the GIL
        late = exchange(server, "uwsgi", uwsgi.encode_request(environ("/hello")))
        assert late.endswith(b"\r\n\r\nHello world\n"), (late, server.log())
        assert server.proc.wait(10) == 0
