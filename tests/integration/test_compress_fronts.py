"""Compress behind a real front server, checked with a real decoding client.

A dumbwaiter process serves an app module written into the test's folder
(``Compress`` around a big text page and a held stream) over FastCGI, behind
nginx configured with exactly what ``dumbwaiter config nginx`` prints (which
has ``fastcgi_buffering off``; nginx's own gzip stays off).  ``curl
--compressed`` decodes: the body must come out byte-exact, with the
Content-Encoding that was negotiated, and a held stream must show its first
chunk, decoded, while the app still holds the last.
"""

from __future__ import annotations

import os
import pathlib
import select
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from dumbwaiter import frontconf
from integration.fronts import SEARCH_PATH, Front, nginx, nginx_conf, required
from serving import Server, free_port, short_tmpdir

pytestmark = pytest.mark.integration

TEXT = "".join(f"line {n}: the quick brown fox jumps over the lazy dog\n" for n in range(20000))

APP = '''\
"""The app for test_compress_fronts.py: Compress around a page and a stream."""

import os
import pathlib
import time

from dumbwaiter.middleware import Compress

DIR = os.environ["DW_TEST_DIR"]
TEXT = pathlib.Path(DIR, "text.txt").read_bytes()


def held(marker):
    yield b"first\\n"
    deadline = time.monotonic() + 20
    while not os.path.exists(os.path.join(DIR, marker)) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield b"last\\n"


def inner(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/page":  # a whole body with its length
        headers = [("Content-Type", "text/plain; charset=utf-8")]
        start_response("200 OK", headers + [("Content-Length", str(len(TEXT)))])
        return [TEXT]
    if path == "/chunks":  # a stream of unknown length
        start_response("200 OK", [("Content-Type", "application/json")])
        return (TEXT[i : i + 5000] for i in range(0, len(TEXT), 5000))
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return held(environ["QUERY_STRING"])
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such page\\n"]


app = Compress(inner)
'''


class Setup:
    def __init__(self, root: str, backend: Server, front: Front) -> None:
        self.root = root
        self.backend = backend
        self.front = front


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    root = short_tmpdir()
    pathlib.Path(root, "text.txt").write_text(TEXT)
    pathlib.Path(root, "compress_app.py").write_text(APP)
    sock = os.path.join(root, "dw.sock")
    with Server(["--fastcgi", f"unix:{sock}"], "compress_app:app", workdir=root) as backend:
        port = free_port()
        snippet = frontconf.nginx("fastcgi", f"unix:{sock}")
        assert "fastcgi_buffering off;" in snippet.server
        with nginx(root, port, nginx_conf(root, port, snippet)) as front:
            yield Setup(root, backend, front)


def curl() -> str:
    path = shutil.which("curl", path=SEARCH_PATH)
    if path is None:
        required("curl", "curl")
    assert path is not None
    return path


def fetch(setup: Setup, path: str, *options: str) -> tuple[dict[str, str], bytes]:
    """curl ``options`` ``path``: the last response's headers (lower-case
    names) and the body as curl wrote it."""
    dump = os.path.join(setup.root, f"headers-{time.monotonic_ns()}")
    done = subprocess.run(
        [curl(), "-sS", "--fail", "-D", dump, *options, setup.front.url(path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, (done.stderr, setup.front.log(), setup.backend.log())
    return read_headers(dump), done.stdout


def read_headers(path: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in pathlib.Path(path).read_text("latin-1").splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


@pytest.mark.parametrize("path", ["/page", "/chunks"])
@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_curl_decodes_byte_exact(setup: Setup, path: str, coding: str) -> None:
    headers, body = fetch(setup, path, "--compressed", "-H", f"Accept-Encoding: {coding}")
    assert headers.get("content-encoding") == coding, headers
    assert headers.get("vary") == "Accept-Encoding"
    assert body == TEXT.encode()
    if path == "/page":  # the whole body went out with its compressed length
        assert int(headers["content-length"]) < len(TEXT) // 10


def test_curl_compressed_gets_the_preferred_coding(setup: Setup) -> None:
    # curl offers every coding it can decode (deflate, gzip, br, zstd here).
    headers, body = fetch(setup, "/page", "--compressed")
    assert headers.get("content-encoding") == "br", headers
    assert body == TEXT.encode()


def test_gzip_only_client(setup: Setup) -> None:
    headers, body = fetch(setup, "/page", "--compressed", "-H", "Accept-Encoding: gzip;q=1, *;q=0")
    assert headers.get("content-encoding") == "gzip"
    assert body == TEXT.encode()


def test_identity_client(setup: Setup) -> None:
    headers, body = fetch(setup, "/page")  # no Accept-Encoding at all
    assert "content-encoding" not in headers
    assert headers.get("vary") == "Accept-Encoding"
    assert headers.get("content-length") == str(len(TEXT))
    assert body == TEXT.encode()


def test_head_is_not_encoded(setup: Setup) -> None:
    headers, body = fetch(setup, "/page", "--compressed", "-I")
    assert "content-encoding" not in headers
    assert body.startswith(b"HTTP/")  # -I prints the head; there is no body


def read_until(proc: subprocess.Popen[bytes], wanted: bytes, limit: float) -> bytes:
    """What curl printed, once it has ``wanted`` (or ``limit`` seconds passed)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    got = b""
    deadline = time.monotonic() + limit
    while wanted not in got:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        data = os.read(fd, 65536)
        if not data:
            break
        got += data
    return got


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_compressed_stream_still_streams(setup: Setup, coding: str) -> None:
    """The app sends "first", then holds until the marker file exists: curl
    must print "first", decoded, while the app still holds "last"."""
    marker = f"go-{coding}-{time.monotonic_ns()}"
    dump = os.path.join(setup.root, f"stream-headers-{marker}")
    command = [curl(), "-sS", "-N", "--compressed", "-H", f"Accept-Encoding: {coding}"]
    command += ["-D", dump, setup.front.url(f"/stream?{marker}")]
    started = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE) as proc:
        try:
            first = read_until(proc, b"first\n", 10)
            assert first == b"first\n", (first, setup.front.log(), setup.backend.log())
            assert time.monotonic() - started < 10
            setup.backend.release(marker)
            rest = read_until(proc, b"last\n", 20)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert first + rest == b"first\nlast\n"
    assert read_headers(dump).get("content-encoding") == coding
