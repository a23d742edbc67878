"""ASGI 3 applications, detected by themselves, served over HTTP and
FastCGI (a multiplexed connection included) on the worker's event loop:
the scope, the body in chunks, streaming, errors, disconnects, lifespan."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import pathlib
import signal
import socket
import threading
import time

import pytest

from clients import FCGI, params
from serving import Server, free_port, run_cli, short_tmpdir, until

APP = """\
import asyncio, json, os

EVENTS = os.path.join(os.environ["DW_TEST_DIR"], "events")


def note(text):
    with open(EVENTS, "a") as out:
        out.write(text + "\\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello from startup"
                note("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                note("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.endswith("/file"):
        name = os.path.join(os.environ["DW_TEST_DIR"], "payload.bin")
        assert "http.response.pathsend" in scope["extensions"]
        size = str(os.path.getsize(name)).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", size)]})
        await send({"type": "http.response.pathsend", "path": name})
        return
    if path.endswith("/slow"):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            note("cancelled")
            raise
    if path.endswith("/pid"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
        return
    if path.endswith("/hold"):
        note("holding")
        for _ in range(200):  # until the test releases it (10 s at most)
            if os.path.exists(os.path.join(os.environ["DW_TEST_DIR"], "go")):
                break
            await asyncio.sleep(0.05)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"held and done"})
        return
    if path.endswith("/stubborn"):
        for _ in range(3):
            try:
                await asyncio.sleep(4)
            except asyncio.CancelledError:
                note("ignored a cancel")
    if path.endswith("/fail-early"):
        raise RuntimeError("before the response")
    if path.endswith("/start-only"):  # a head that promises 5 bytes, then nothing
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5")]})
        return
    if path.endswith("/poll"):  # a long poll: its client leaves before the answer
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive())["type"] != "http.disconnect":
            pass
        note("poll returned")
        return
    if path.endswith("/split"):  # a value that would write a field of its own
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-next", b"a\\r\\nset-cookie: evil=1")]})
        await send({"type": "http.response.body", "body": b"split"})
        return
    if path.endswith("/status"):
        import http
        status = {"enum": http.HTTPStatus.CREATED, "text": "200", "bool": True, "big": 600,
                  "interim": 100}
        await send({"type": "http.response.start", "headers": [],
                    "status": status[scope["query_string"].decode()]})
        await send({"type": "http.response.body", "body": b"status"})
        return
    if path.endswith("/wait-disconnect"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started\\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        note("disconnected")
        try:
            for _ in range(100):
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as exc:
            note("send raised " + type(exc).__name__)
        return
    body = b""
    chunks = 0
    while True:
        message = await receive()
        body += message.get("body", b"")
        chunks += 1
        if not message.get("more_body"):
            break
    if path.endswith("/stream"):
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"text/plain"), (b"x-kind", b"stream")]})
        for part in (b"one ", b"two ", b"three\\n"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path.endswith("/fail-late"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("after the response began")
    info = {
        "type": scope["type"], "asgi": scope["asgi"], "http_version": scope["http_version"],
        "method": scope["method"], "scheme": scope["scheme"], "path": path,
        "raw_path": scope["raw_path"].decode("latin-1"), "root_path": scope["root_path"],
        "query_string": scope["query_string"].decode("latin-1"),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "client": scope["client"], "server": scope["server"],
        "state": scope.get("state", {}).get("greeting"),
        "body_length": len(body), "chunks": chunks,
    }
    data = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": data})
"""


@pytest.fixture
def served() -> tuple[Server, int, str]:
    root = short_tmpdir()
    pathlib.Path(root, "asgiapp.py").write_text(APP)
    port = free_port()
    sock = os.path.join(root, "app.sock")
    server = Server(
        ["--http", f"127.0.0.1:{port}", "--fastcgi", f"unix:{sock}", "--threads", "2"],
        "asgiapp:app",
        workdir=root,
    )
    yield server, port, sock
    server.stop()


def events(server: Server) -> list[str]:
    try:
        return server.path("events").read_text().splitlines()
    except FileNotFoundError:
        return []


def get(port: int, path: str, method: str = "GET", body: bytes | None = None, **headers: str):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_an_asgi_app_is_detected_and_gets_a_complete_scope(served: tuple) -> None:
    server, port, _ = served
    assert until(lambda: "startup" in events(server)), server.log()
    status, _, body = get(port, "/a%20b/c?x=1&y=%20", "POST", b"z" * 200_000, **{"X-Thing": "v"})
    assert status == 200
    info = json.loads(body)
    assert info["type"] == "http"
    assert info["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (info["http_version"], info["method"], info["scheme"]) == ("1.1", "POST", "http")
    assert (info["path"], info["raw_path"], info["root_path"]) == ("/a b/c", "/a%20b/c", "")
    assert info["query_string"] == "x=1&y=%20"
    assert ["x-thing", "v"] in info["headers"]
    assert ["content-length", "200000"] in info["headers"]
    assert info["client"][0] == "127.0.0.1" and info["server"] == ["127.0.0.1", port]
    assert info["state"] == "hello from startup"
    assert info["body_length"] == 200_000 and info["chunks"] > 1  # in chunks
    assert "ready: ASGI" in server.log()  # no thread pool started for it


def test_streaming_and_errors(served: tuple) -> None:
    _, port, _ = served
    status, headers, body = get(port, "/stream")
    assert (status, headers["x-kind"], body) == (201, "stream", b"one two three\n")
    assert headers.get("transfer-encoding") == "chunked"
    status, _, body = get(port, "/fail-early")
    assert status == 500
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        get(port, "/fail-late")  # broken off: never taken for a whole response
    assert get(port, "/")[0] == 200  # the worker serves on


def test_what_the_app_sends_is_checked_before_it_is_written(served: tuple) -> None:
    server, port, _ = served
    # A head without its body: a 500 rather than a head promising 5 bytes.
    assert get(port, "/start-only")[0] == 500
    assert until(lambda: "returned without the end of its response (GET" in server.log())
    # A CR LF in a value is refused, not written (response splitting).
    status, headers, _ = get(port, "/split")
    assert status == 500 and "set-cookie" not in headers
    assert "bad value for header x-next" in server.log()
    # The status: an int (an IntEnum too) from 200 to 599.
    assert get(port, "/status?enum")[:1] == (201,)
    for bad in ("text", "bool", "big", "interim"):
        assert get(port, f"/status?{bad}")[0] == 500, bad
    assert get(port, "/")[0] == 200  # the worker serves on
    # A long poll whose client left may return without its body: no error.
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
    assert until(lambda: "poll returned" in events(server)), server.log()
    assert get(port, "/")[0] == 200
    assert "(GET /poll)" not in server.log()  # no "returned without ...", no error


def test_over_fastcgi_multiplexed_with_the_root_path(served: tuple) -> None:
    server, _, sock = served
    unix = socket.socket(socket.AF_UNIX)
    unix.connect(sock)
    conn = FCGI(unix)
    try:
        first = conn.start(
            params("/one", SCRIPT_NAME="/app", REQUEST_URI="/app/one?q", QUERY_STRING="q"),
            keep_conn=True,
        )
        second = conn.start(
            params("/two", SCRIPT_NAME="/app", REQUEST_URI="/app/two"), b"body!", keep_conn=True
        )
        one, two = conn.reply(first), conn.reply(second)
    finally:
        conn.close()
    assert one.status == two.status == 200
    a, b = json.loads(one.body), json.loads(two.body)
    assert (a["root_path"], a["path"], a["query_string"]) == ("/app", "/app/one", "q")
    assert (a["client"], a["server"]) == (["192.0.2.7", 0], ["example.org", 80])
    assert (b["path"], b["body_length"]) == ("/app/two", 5)
    assert events(server).count("startup") == 1


def test_a_client_that_leaves_is_a_disconnect_and_send_then_raises(served: tuple) -> None:
    server, port, _ = served
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(b"GET /wait-disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while b"started" not in received:
        chunk = client.recv(65536)
        assert chunk, received
        received += chunk
    time.sleep(0.2)
    client.close()
    assert until(lambda: "disconnected" in events(server)), server.log()
    assert until(lambda: "send raised ClientDisconnected" in events(server)), events(server)


def test_lifespan_shutdown_on_stop(served: tuple) -> None:
    server, port, _ = served
    assert get(port, "/")[0] == 200
    server.send_signal(signal.SIGTERM)  # the master's, passed on to its worker
    server.proc.wait(20)
    assert events(server)[-1] == "shutdown"


def test_an_explicit_interface_that_does_not_fit_is_one_line() -> None:
    done = run_cli(["--interface", "nonsense", "m:app"])
    assert done.returncode == 2
    assert "--interface" in done.stderr and done.stderr.count("\n") == 1


def test_starlette_over_http_and_fastcgi() -> None:
    root = short_tmpdir()
    port = free_port()
    sock = os.path.join(root, "app.sock")
    args = ["--http", f"127.0.0.1:{port}", "--fastcgi", f"unix:{sock}"]
    with Server(args, "starlette_app:app", workdir=root, env={"PYTHONPATH": APPS}) as server:
        status, _, body = get(port, "/items/pen?q=blue")
        assert status == 200, server.log()
        assert json.loads(body) == {
            "item": "pen",
            "q": "blue",
            "root_path": "",
            "url": f"http://127.0.0.1:{port}/items/pen?q=blue",
            "started": "yes",
        }
        status, _, body = get(port, "/echo", "POST", b'{"a": [1, 2]}', **JSON)
        assert (status, json.loads(body)) == (200, {"got": {"a": [1, 2]}, "length": 13})
        assert get(port, "/stream")[::2] == (200, b"part 0\npart 1\npart 2\n")
        unix = socket.socket(socket.AF_UNIX)
        unix.connect(sock)
        conn = FCGI(unix)
        try:
            mounted = params("/items/pen", SCRIPT_NAME="/shop", REQUEST_URI="/shop/items/pen")
            reply = conn.reply(conn.start(mounted))
        finally:
            conn.close()
        assert reply.status == 200, reply
        answer = json.loads(reply.body)
        assert (answer["item"], answer["root_path"]) == ("pen", "/shop")
        assert answer["url"] == "http://example.org/shop/items/pen"
        assert "lifespan" not in server.log()  # spoken: nothing to say


APPS = os.pathsep.join([str(pathlib.Path(__file__).parents[1] / "apps")])
JSON = {"Content-Type": "application/json"}


def test_timeout_answers_504_and_cancels_the_task() -> None:
    root = short_tmpdir()
    pathlib.Path(root, "asgiapp.py").write_text(APP)
    port = free_port()
    with Server(
        ["--http", f"127.0.0.1:{port}", "--timeout", "1"], "asgiapp:app", workdir=root
    ) as server:
        started = time.monotonic()
        status, _, _ = get(port, "/slow")
        assert status == 504
        assert time.monotonic() - started < 5
        assert until(lambda: "cancelled" in events(server)), server.log()
        assert "its task cancelled" in server.log()
        assert get(port, "/")[0] == 200
        assert "replacing worker" not in server.log()  # no thread was lost


def test_a_task_that_ignores_its_cancellation_is_logged_and_frees_the_cap() -> None:
    root = short_tmpdir()
    pathlib.Path(root, "asgiapp.py").write_text(APP)
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--timeout", "1", "--threads", "1", "--queue-size", "0"]
    with Server(args, "asgiapp:app", workdir=root) as server:
        assert get(port, "/stubborn")[0] == 504
        assert until(lambda: "ignored a cancel" in events(server))
        assert get(port, "/")[0] == 503  # the cap (1) is still its
        assert until(lambda: "ignored its cancellation" in server.log(), 10)
        assert get(port, "/")[0] == 200
        assert "replacing worker" not in server.log()


def test_a_reload_waits_for_requests_in_flight_then_runs_lifespan_shutdown() -> None:
    root = short_tmpdir()
    pathlib.Path(root, "asgiapp.py").write_text(APP)
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--workers", "1"]
    with Server(args, "asgiapp:app", workdir=root) as server:
        old = get(port, "/pid")[2]
        held: list[tuple] = []
        thread = threading.Thread(target=lambda: held.append(get(port, "/hold")))
        thread.start()
        assert until(lambda: "holding" in events(server))
        server.send_signal(signal.SIGHUP)
        assert until(lambda: get(port, "/pid")[2] != old)  # the new generation serves
        assert events(server).count("startup") == 2
        assert "shutdown" not in events(server)  # the old one still has a request
        server.release("go")
        thread.join(15)
        assert held and held[0][0] == 200 and held[0][2] == b"held and done"
        assert until(lambda: "shutdown" in events(server))


def test_pathsend_and_max_requests() -> None:
    root = short_tmpdir()
    pathlib.Path(root, "asgiapp.py").write_text(APP)
    payload = os.urandom(2 * 1024 * 1024 + 3)
    pathlib.Path(root, "payload.bin").write_bytes(payload)
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--max-requests", "5", "--workers", "1"]
    with Server(args, "asgiapp:app", workdir=root) as server:
        for _ in range(2):
            status, headers, body = get(port, "/file")
            assert (status, headers["content-length"], body == payload) == (
                200,
                str(len(payload)),
                True,
            )
        for _ in range(4):
            assert get(port, "/")[0] == 200
        assert until(lambda: "served 5 requests (--max-requests)" in server.log()), server.log()


def test_gzip_compresses_asgi_responses() -> None:
    root = short_tmpdir()
    pathlib.Path(root, "asgiapp.py").write_text(APP)
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--gzip", "--gzip-min-size", "10"]
    with Server(args, "asgiapp:app", workdir=root):
        status, headers, body = get(port, "/info", **{"Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert headers["vary"] == "Accept-Encoding"
        assert json.loads(gzip.decompress(body))["path"] == "/info"
        status, headers, body = get(port, "/info")
        assert "content-encoding" not in headers and json.loads(body)["path"] == "/info"
