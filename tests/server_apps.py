"""WSGI apps for the tests that run a real server (tests/functional,
tests/integration), routed by PATH_INFO.

Cross-process coordination goes through files in the directory named by the
``DW_TEST_DIR`` environment variable, so a test can hold a request in the app
and release it, and can see whether the app was called at all.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

StartResponse = Any
DIR = os.environ.get("DW_TEST_DIR", "/tmp")
_barrier = threading.Barrier(2, timeout=10)


def _mark(name: str, text: str = "") -> None:
    with open(os.path.join(DIR, name), "a") as f:
        f.write(text + "\n")


def _wait_for(name: str, limit: float = 20.0) -> bool:
    path = os.path.join(DIR, name)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.01)
    return False


class _Closing:
    """An iterable that records its close() and can stall between chunks."""

    def __init__(self, chunks: list[bytes], hold: str | None, tag: str) -> None:
        self.chunks = chunks
        self.hold = hold
        self.tag = tag

    def __iter__(self) -> Iterator[bytes]:
        for number, chunk in enumerate(self.chunks):
            if number == 1 and self.hold:
                _wait_for(self.hold)
            yield chunk

    def close(self) -> None:
        _mark("closed", self.tag)


def _hog() -> None:
    time.sleep(0.3)  # the loop has sent the answer and closed
    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        _mark("started", "hog")
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pass
    finally:
        sys.setswitchinterval(interval)


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING", "")
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
        return [b"Hello world\n"]
    if path.startswith("/echo"):
        body = environ["wsgi.input"].read()
        keys = (
            "REQUEST_METHOD",
            "SCRIPT_NAME",
            "PATH_INFO",
            "QUERY_STRING",
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
            "REMOTE_ADDR",
            "SERVER_NAME",
            "SERVER_PORT",
            "HTTP_HOST",
            "SERVER_PROTOCOL",
            "wsgi.url_scheme",
            "dumbwaiter.fcgi_role",
            "HTTP_X_TEST",
            "HTTPS",
            "REQUEST_URI",
            "dumbwaiter.connection",
            "HTTP_PROXY",
            "HTTP_X_FORWARDED_FOR",
            "HTTP_X_FORWARDED_PROTO",
        )
        info = {k: environ.get(k) for k in keys}
        info["pid"] = os.getpid()  # with dumbwaiter.connection: which connection
        info["body_sha256"] = hashlib.sha256(body).hexdigest()
        info["body_length"] = len(body)
        data = environ.get("dumbwaiter.fcgi_data")
        if data is not None:
            info["fcgi_data"] = data.read().decode("latin-1")
        out = json.dumps(info).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [out]
    if path == "/file":
        # wsgi.file_wrapper over a real file: sent with sendfile where the
        # protocol frames the body raw (HTTP with Content-Length).
        name = os.path.join(DIR, "payload.bin")
        if not os.path.exists(name):
            with open(name + ".tmp", "wb") as f:
                f.write(bytes(range(251)) * 1200)  # 301200 bytes
            os.replace(name + ".tmp", name)
        size = os.path.getsize(name)
        start_response(
            "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
        )
        return environ["wsgi.file_wrapper"](open(name, "rb"))  # the server closes it
    if path == "/flood":
        # 200 MiB in 64 KiB chunks, recording how far the app got.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Flood()
    if path == "/sleep":
        time.sleep(float(query or "0.05"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/count":
        _mark("calls", query)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"counted\n"]
    if path == "/block":
        # Held until the test creates the file named in the query string.
        _mark("calls", "block " + query)
        _mark("started", f"{query} {os.getpid()}")
        released = _wait_for(query)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"released\n" if released else b"timed out\n"]
    if path == "/hog":
        # Answers, then a thread holds the GIL for a second (no forced
        # switch meanwhile): the event loop's thread runs nothing until then.
        threading.Thread(target=_hog, daemon=True).start()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hogging\n"]
    if path == "/barrier":
        # Two requests must be in the app at the same time to pass.
        try:
            _barrier.wait()
        except threading.BrokenBarrierError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"not concurrent\n"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"together\n"]
    if path == "/stream":
        # First chunk, then held until the file named in the query exists.
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Closing([b"first\n", b"last\n"], query or None, "stream")
    if path == "/error":
        raise RuntimeError("the app failed on purpose")
    if path == "/error-late":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _failing()
    if path == "/authorize":
        if environ.get("HTTP_AUTHORIZATION") == "Bearer good":
            start_response("200 OK", [("Variable-X-User", "alice")])
            return [b""]
        start_response(
            "401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")]
        )
        return [b"no\n"]
    if path == "/big":
        body = bytes(range(256)) * 480  # 122880 bytes
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]
    if path == "/digest":
        # The body's length and SHA-256, read in blocks: memory stays flat
        # whatever the body's size.  Marked in "calls" with the query.
        _mark("calls", "digest " + query)
        length, digest = _digest(environ["wsgi.input"])
        out = json.dumps({"body_length": length, "body_sha256": digest}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [out]
    if path == "/upload-hold":
        # Reads the whole body, sends a first chunk, then holds until the
        # file named in the query exists; close() marks "upload-hold".
        _mark("calls", "upload-hold " + query)
        _digest(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _Closing([b"first\n", b"last\n"], query or None, "upload-hold")
    if path == "/close-raises":
        # A complete response whose iterable's close() raises.
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "12")])
        return _RaisingClose([b"Hello ", b"world\n"])
    if path == "/stats":
        # What the process holds, from the inside: Python's allocated memory
        # blocks and objects after a collection, and its threads.
        gc.collect()
        stats = {
            "blocks": sys.getallocatedblocks(),
            "objects": len(gc.get_objects()),
            "threads": threading.active_count(),
        }
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(stats).encode()]
    if path == "/hang":
        # An app that does not return: the thread is held until the file
        # named in the query exists, with no time limit.
        _mark("started", f"hang {query} {os.getpid()}")
        while not os.path.exists(os.path.join(DIR, query or "never")):
            time.sleep(0.05)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"released\n"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


class _Flood:
    chunk = b"x" * 65536

    def __init__(self) -> None:
        self.produced = 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(3200):
            self.produced += len(self.chunk)
            with open(os.path.join(DIR, "produced"), "w") as f:
                f.write(str(self.produced))
            yield self.chunk

    def close(self) -> None:
        _mark("closed", "flood")


def _digest(stream: Any) -> tuple[int, str]:
    digest = hashlib.sha256()
    length = 0
    while block := stream.read(65536):
        digest.update(block)
        length += len(block)
    return length, digest.hexdigest()


class _RaisingClose:
    """A complete body whose close() fails (after marking "closed")."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        _mark("closed", "close-raises")
        raise RuntimeError("close() failed on purpose")


def _failing() -> Iterator[bytes]:
    yield b"partial "
    raise RuntimeError("failed after the head")


application = app


def authorize_everything(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A FastCGI authorizer for every URL (lighttpd "mode" => "authorizer")."""
    environ["PATH_INFO"] = "/authorize"
    return app(environ, start_response)


FLASK_ROUTES = ("/form", "/link", "/target")


def with_flask(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The interop matrix's app (tests/integration/test_matrix.py): the routes
    above, tests/apps/flask_app.py's form and ``url_for`` link, and the
    FastCGI authorizer role (so one backend answers both roles)."""
    if environ.get("dumbwaiter.fcgi_role") == "AUTHORIZER":
        return authorize_everything(environ, start_response)
    if environ.get("PATH_INFO") in FLASK_ROUTES:
        # tests/apps/flask_app.py, imported on first use (tests/apps must be on the path).
        flask = importlib.import_module("flask_app").app
        result: Iterable[bytes] = flask(environ, start_response)
        return result
    return app(environ, start_response)
