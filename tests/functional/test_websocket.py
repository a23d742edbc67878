"""ASGI WebSockets on the HTTP listener, end to end with a raw client: the
scope, accept with a subprotocol and headers, denial (403 and the
denial-response extension), close codes and reasons both ways, failures
before and after accept, --ws-max-size, keepalive pings, send after a
disconnect, backpressure, a graceful stop, --timeout, and what operations
see (access log, metrics, the status document)."""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import struct
import time
import urllib.request

import pytest

from serving import Server, free_port, short_tmpdir, until
from wsclient import BINARY, PING, PONG, TEXT, HandshakeRefused, WSClient

APP = """\
import asyncio, json, os

NOTES = os.path.join(os.environ["DW_TEST_DIR"], "notes")


def note(text):
    with open(NOTES, "a") as out:
        out.write(text + "\\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hi"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    path = scope["path"][len(scope["root_path"]):]
    assert (await receive())["type"] == "websocket.connect"
    if path == "/deny":
        await send({"type": "websocket.close"})
        return
    if path == "/deny-with-response":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"x-why", b"token")]})
        await send({"type": "websocket.http.response.body", "body": b"no entry"})
        return
    if path == "/fail-early":
        raise RuntimeError("before accept")
    if path == "/return-early":
        return
    if path == "/split-subprotocol":
        await send({"type": "websocket.accept", "subprotocol": "one\\r\\nx-evil: 1"})
    if path == "/split-accept":  # a value that would write a field of its own
        await send({"type": "websocket.accept", "headers": [(b"x-a", b"1\\r\\nx-evil: 1")]})
    if path == "/slow-accept":
        await asyncio.sleep(1)
    await send({"type": "websocket.accept",
                "subprotocol": scope["subprotocols"][-1] if scope["subprotocols"] else None,
                "headers": [(b"x-hello", b"there")]})
    if path == "/scope":
        info = {key: scope[key] for key in (
            "type", "asgi", "http_version", "scheme", "path", "root_path", "subprotocols")}
        info["raw_path"] = scope["raw_path"].decode()
        info["query_string"] = scope["query_string"].decode()
        info["headers"] = {k.decode(): v.decode() for k, v in scope["headers"]}
        info["state"] = scope["state"]["greeting"]
        info["client"] = scope["client"][0]
        info["extensions"] = sorted(scope["extensions"])
        await send({"type": "websocket.send", "text": json.dumps(info)})
    elif path == "/fail-late":
        await receive()
        raise RuntimeError("after accept")
    elif path == "/return-late":
        return
    elif path == "/close-first":
        await send({"type": "websocket.close", "code": 4002, "reason": "bye now"})
        note("after close: " + json.dumps(await receive()))
        return
    elif path == "/flood":
        sent = 0
        try:
            for _ in range(200):
                await send({"type": "websocket.send", "bytes": b"x" * 65536})
                sent += 1
                note(f"sent {sent}")
        except OSError as exc:
            note(f"send raised {type(exc).__name__}")
        return
    elif path == "/flood-on":
        try:
            for sent in range(1, 100_000):  # until the client goes (6 GiB at most)
                await send({"type": "websocket.send", "bytes": b"x" * 65536})
                if sent % 10 == 0:
                    note(f"sent {sent}")
        except OSError as exc:
            note(f"send raised {type(exc).__name__}")
        return
    elif path == "/sleepy":
        await asyncio.sleep(3)
    elif path == "/cancelled":
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future
    elif path == "/send-after-disconnect":
        message = await receive()
        note("got " + message["type"])
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            note(f"send raised {type(exc).__name__}")
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            note(f"disconnect {message['code']} {message.get('reason', '')}")
            return
        if "text" in message:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
"""


@pytest.fixture
def root() -> pathlib.Path:
    folder = pathlib.Path(short_tmpdir())
    (folder / "wsapp.py").write_text(APP)
    return folder


def serve(root: pathlib.Path, *args: str) -> tuple[Server, int]:
    port = free_port()
    server = Server(["--http", f"127.0.0.1:{port}", *args], "wsapp:app", workdir=str(root))
    return server, port


def notes(server: Server) -> list[str]:
    try:
        return server.path("notes").read_text().splitlines()
    except FileNotFoundError:
        return []


def test_scope_and_accept_with_a_subprotocol_and_headers(root: pathlib.Path) -> None:
    server, port = serve(root, "--script-name", "/app")
    with server:
        client = WSClient.connect(
            ("127.0.0.1", port), "/app/scope?x=1%202", subprotocols=["one", "two"]
        )
        lines = client.head.split(b"\r\n")
        assert b"Sec-WebSocket-Protocol: two" in lines and b"x-hello: there" in lines
        opcode, payload = client.receive()
        assert opcode == TEXT
        info = json.loads(payload)
        assert info["type"] == "websocket"
        assert info["asgi"] == {"version": "3.0", "spec_version": "2.5"}
        assert info["http_version"] == "1.1" and info["scheme"] == "ws"
        assert info["path"] == "/app/scope" and info["root_path"] == "/app"
        assert info["raw_path"] == "/app/scope" and info["query_string"] == "x=1%202"
        assert info["subprotocols"] == ["one", "two"]
        assert info["headers"]["upgrade"] == "websocket"
        assert info["headers"]["sec-websocket-protocol"] == "one, two"
        assert info["state"] == "hi" and info["client"] == "127.0.0.1"
        assert info["extensions"] == ["websocket.http.response"]
        client.close()
        assert client.receive_close() == (1000, "")
        assert client.at_eof()


def test_messages_both_ways_and_the_clients_close_reaches_the_app(root: pathlib.Path) -> None:
    server, port = serve(root)
    with server:
        client = WSClient.connect(("127.0.0.1", port), "/echo")
        client.send_text("héllo")
        assert client.receive() == (TEXT, "héllo".encode())
        client.send_bytes(bytes(range(256)) * 1000)
        assert client.receive() == (BINARY, bytes(range(256)) * 1000)
        client.send(TEXT, b"one ", fin=False)
        client.send(PING, b"between")
        client.send(0, b"two")
        assert client.receive() == (PONG, b"between")
        assert client.receive() == (TEXT, b"one two")
        client.close(4001, "done here")
        assert client.receive_close() == (4001, "done here")
        assert client.at_eof()
        assert until(lambda: "disconnect 4001 done here" in notes(server))
        # Plain HTTP on the same listener is untouched.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.read() == b"plain http"


def test_the_apps_close_reaches_the_client_with_its_code_and_reason(root: pathlib.Path) -> None:
    server, port = serve(root)
    with server:
        client = WSClient.connect(("127.0.0.1", port), "/close-first")
        assert client.receive_close() == (4002, "bye now")
        client.close(4002, "bye now")
        assert client.at_eof()
        assert until(lambda: any(n.startswith("after close: ") for n in notes(server)))
        after = json.loads(notes(server)[-1].removeprefix("after close: "))
        assert after["type"] == "websocket.disconnect" and after["code"] == 4002


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/deny", 403, b""),
        ("/deny-with-response", 401, b"no entry"),
        ("/fail-early", 500, b"Internal Server Error\n"),
        ("/return-early", 500, b"Internal Server Error\n"),
        ("/split-accept", 500, b"Internal Server Error\n"),  # refused, not written
        ("/split-subprotocol", 500, b"Internal Server Error\n"),
    ],
)
def test_a_handshake_the_app_does_not_accept(
    root: pathlib.Path, path: str, status: int, body: bytes
) -> None:
    server, port = serve(root)
    with server:
        with pytest.raises(HandshakeRefused) as refused:
            WSClient.connect(("127.0.0.1", port), path)
        assert refused.value.status == status
        assert refused.value.body == body
        if path == "/deny-with-response":
            assert b"x-why: token" in refused.value.head
        assert b"x-evil" not in refused.value.head
        if status == 500:
            assert until(lambda: "WebSocket" in server.log())


@pytest.mark.parametrize(("path", "code"), [("/fail-late", 1011), ("/return-late", 1000)])
def test_an_app_that_ends_after_accept_closes_the_connection(
    root: pathlib.Path, path: str, code: int
) -> None:
    server, port = serve(root)
    with server:
        client = WSClient.connect(("127.0.0.1", port), path)
        client.send_text("go")
        assert client.receive_close()[0] == code
        client.close(code)
        assert client.at_eof()
        if code == 1011:
            assert until(lambda: "after accept" in server.log())


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([("Sec-WebSocket-Version", "8")], 426),
        ([("Sec-WebSocket-Key", "too-short")], 400),
    ],
)
def test_a_bad_handshake_is_refused_before_the_app(
    root: pathlib.Path, headers: list[tuple[str, str]], status: int
) -> None:
    server, port = serve(root)
    with server:
        # (the client sends its own version and key first; the later duplicate wins)
        with pytest.raises(HandshakeRefused) as refused:
            WSClient.connect(("127.0.0.1", port), "/echo", headers=headers)
        assert refused.value.status == status
        if status == 426:
            assert b"Sec-WebSocket-Version: 13" in refused.value.head
        assert not notes(server)


def test_a_message_over_ws_max_size_closes_with_1009(root: pathlib.Path) -> None:
    server, port = serve(root, "--ws-max-size", "1000")
    with server:
        client = WSClient.connect(("127.0.0.1", port), "/echo")
        client.send_bytes(b"x" * 1000)
        assert client.receive() == (BINARY, b"x" * 1000)
        client.send(BINARY, b"x" * 600, fin=False)
        client.send(0, b"x" * 600)  # 1200 in all, in fragments
        assert client.receive_close()[0] == 1009
        assert client.at_eof()
        assert until(lambda: "disconnect 1009" in " ".join(notes(server)))


def test_a_silent_connection_is_pinged_and_closed_without_a_pong(root: pathlib.Path) -> None:
    server, port = serve(root, "--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.5")
    with server:
        answering = WSClient.connect(("127.0.0.1", port), "/echo")
        silent = WSClient.connect(("127.0.0.1", port), "/echo")
        for _ in range(3):  # pinged, answered: kept
            opcode, payload = answering.receive()
            assert opcode == PING
            answering.send(PONG, payload)
        answering.send_text("still here")
        assert answering.receive() == (TEXT, b"still here")
        assert silent.receive()[0] == PING  # not answered: closed
        assert silent.receive_close()[0] == 1011
        assert silent.at_eof()


def test_send_after_the_client_left_raises_an_oserror(root: pathlib.Path) -> None:
    server, port = serve(root)
    with server:
        client = WSClient.connect(("127.0.0.1", port), "/send-after-disconnect")
        client.shut()  # no close frame: the TCP connection ends
        assert until(lambda: "send raised ClientDisconnected" in notes(server))
        assert "got websocket.disconnect" in notes(server)


def test_a_slow_reader_holds_the_apps_sends_back(root: pathlib.Path) -> None:
    server, port = serve(root)
    with server:
        client = WSClient.connect(("127.0.0.1", port), "/flood")
        time.sleep(1.0)
        held = notes(server)
        assert held and len(held) < 150, held[-1:]  # 200 x 64 KiB do not fit the buffers
        received = 0
        for _ in range(200):
            opcode, payload = client.receive()
            assert opcode == BINARY and len(payload) == 65536
            received += 1
        assert received == 200
        assert until(lambda: "sent 200" in notes(server))


def test_a_graceful_stop_says_going_away(root: pathlib.Path) -> None:
    server, port = serve(root)
    client = WSClient.connect(("127.0.0.1", port), "/echo")
    client.send_text("hi")
    assert client.receive() == (TEXT, b"hi")
    server.send_signal(signal.SIGTERM)
    try:
        assert client.receive_close() == (1001, "server stopping")
        client.close(1001)
        assert client.at_eof()
        assert until(lambda: "disconnect 1001" in " ".join(notes(server)))
        server.proc.wait(10)
    finally:
        server.stop()


def test_timeout_does_not_cut_an_open_websocket(root: pathlib.Path) -> None:
    server, port = serve(root, "--timeout", "0.5")
    with server:
        client = WSClient.connect(("127.0.0.1", port), "/echo")
        time.sleep(2.0)
        client.send_text("later")
        assert client.receive() == (TEXT, b"later")
        assert "still in the app" not in server.log()


def test_operations_see_websockets(root: pathlib.Path) -> None:
    metrics = free_port()
    status = free_port()
    log = root / "access.log"
    server, port = serve(
        root,
        "--workers",
        "1",
        "--metrics",
        f"127.0.0.1:{metrics}",
        "--status",
        f"127.0.0.1:{status}",
        "--access-log",
        str(log),
    )
    with server:
        client = WSClient.connect(("127.0.0.1", port), "/echo?room=1")

        def gauge() -> str:
            url = f"http://127.0.0.1:{metrics}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            return " ".join(
                line for line in text.splitlines() if line.startswith("dumbwaiter_websockets{")
            )

        assert until(lambda: gauge().endswith(" 1"), 10)
        url = f"http://127.0.0.1:{status}/status.json"

        def inflight() -> list[dict[str, object]]:
            with urllib.request.urlopen(url, timeout=10) as response:
                document = json.loads(response.read())
            return [item for worker in document["workers"] for item in worker["inflight"]]

        assert until(lambda: any(i["state"] == "websocket" for i in inflight()), 10)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/healthz", timeout=10) as reply:
            health = reply.read().decode()
        assert health.startswith("serving: 1 worker(s)") and "1 WebSocket(s)" in health
        client.send_text("x" * 100)
        client.receive()
        client.close()
        client.receive_close()
        assert until(lambda: log.exists() and " 101 " in log.read_text(), 10)
        line = log.read_text()
        assert "GET /echo?room=1" in line
        assert until(lambda: gauge().endswith(" 0"), 10)


def test_a_wsgi_app_answers_an_upgrade_as_a_plain_request() -> None:
    port = free_port()
    with Server(["--http", f"127.0.0.1:{port}"]):
        with pytest.raises(HandshakeRefused) as refused:
            WSClient.connect(("127.0.0.1", port), "/")
        assert refused.value.status == 404  # (server_apps has no /)
        assert b"Connection: close" in refused.value.head


def test_a_client_that_resets_while_the_app_waits_to_send_frees_its_place(
    root: pathlib.Path,
) -> None:
    # (The cap is --threads + --queue-size: 2.)  Each client leaves the
    # app blocked in send(), then resets the connection.
    server, port = serve(root, "--threads", "1", "--queue-size", "1")
    with server:
        for _ in range(2):
            client = WSClient.connect(("127.0.0.1", port), "/flood-on")
            assert until(lambda: len(notes(server)) > 0)
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.shut()
            assert until(lambda: "send raised ClientDisconnected" in notes(server)), (
                notes(server)[-3:],
                server.log()[-2000:],
            )
            server.path("notes").unlink()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.read() == b"plain http"
        assert "RuntimeError" not in server.log()


@pytest.mark.parametrize("path", ["/echo", "/sleepy"])
def test_a_client_that_does_not_read_or_an_app_that_does_not_receive_stops_the_reading(
    root: pathlib.Path, path: str
) -> None:
    # /echo: pings (each answered with a pong) sent by a client that reads
    # nothing; /sleepy: messages to an app that does not receive yet.
    server, port = serve(root)
    with server:
        client = WSClient.connect(("127.0.0.1", port), path)
        frame = (
            client.frame(PING, b"p" * 125) if path == "/echo" else client.frame(BINARY, b"x" * 4000)
        )
        burst = frame * (1_000_000 // len(frame))
        client.sock.settimeout(2.0)
        sent = 0
        with pytest.raises(TimeoutError):
            for _ in range(100):  # 100 MB at most: the server stops reading long before
                client.sock.sendall(burst)
                sent += len(burst)
        assert sent < 60_000_000, sent


def handshake(request: bytes, more: bytes = b"") -> bytes:
    """A WebSocket handshake's head, written by hand: ``request`` is its
    method and target, ``more`` its extra header lines."""
    return (
        request + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + more + b"\r\n"
    )


def test_a_request_that_is_not_a_get_is_no_handshake(root: pathlib.Path) -> None:
    server, port = serve(root)
    with server:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(handshake(b"POST /echo", b"Content-Length: 0\r\n"))
            answer = b""
            while not answer.endswith(b"plain http"):
                chunk = sock.recv(65536)
                assert chunk, answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def test_frames_before_the_101_past_the_bound_get_a_400(root: pathlib.Path) -> None:
    server, port = serve(root)
    with server:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(handshake(b"GET /slow-accept"))
            time.sleep(0.3)  # (read apart from the handshake: what comes with it is kept)
            sock.sendall(b"\x82\x7e\xff\xff" + b"\x00" * 100_000)  # did not wait
            answer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer[:80]


def test_an_app_cancelled_after_accept_closes_with_1011(root: pathlib.Path) -> None:
    server, port = serve(root)
    with server:
        client = WSClient.connect(("127.0.0.1", port), "/cancelled")
        assert client.receive_close()[0] == 1011
