"""--static URL=DIR on an HTTP listener: files answered by the event loop
(no thread, no app call), with validators, ranges and HEAD; nothing outside
the folder, whether by ``..`` or by a symbolic link."""

from __future__ import annotations

import email.utils
import http.client
import os
import pathlib

import pytest

from serving import Server, free_port, run_cli, short_tmpdir

APP = """\
import os

def app(environ, start_response):
    with open(os.path.join(os.environ["DW_TEST_DIR"], "calls"), "a") as out:
        out.write(environ["PATH_INFO"] + "\\n")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"from the app\\n"]
"""
SMALL = b"a static file\n"
BIG = os.urandom(3 * 1024 * 1024 + 17)


def request(
    conn: http.client.HTTPConnection, path: str, method: str = "GET", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


@pytest.fixture(params=["uvloop", "asyncio"])
def served(request: pytest.FixtureRequest) -> tuple[Server, http.client.HTTPConnection, str]:
    root = short_tmpdir()
    pathlib.Path(root, "recording.py").write_text(APP)
    files = pathlib.Path(root, "files")
    (files / "sub").mkdir(parents=True)
    (files / "small.txt").write_bytes(SMALL)
    (files / "big.bin").write_bytes(BIG)
    (files / "empty.txt").write_bytes(b"")
    pathlib.Path(root, "secret.txt").write_bytes(b"secret\n")
    os.symlink(os.path.join(root, "secret.txt"), files / "out.txt")
    os.symlink(files / "small.txt", files / "in.txt")
    port = free_port()
    args = ["--http", f"127.0.0.1:{port}", "--static", f"/static/={files}"]
    server = Server([*args, "--loop", request.param], "recording:app", workdir=root)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    yield server, conn, root
    conn.close()
    server.stop()


def app_calls(root: str) -> list[str]:
    try:
        return pathlib.Path(root, "calls").read_text().splitlines()
    except FileNotFoundError:
        return []


def test_files_are_served_by_the_loop_with_validators(served: tuple) -> None:
    _, conn, root = served
    status, headers, body = request(conn, "/static/small.txt")
    assert (status, body) == (200, SMALL)
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == str(len(SMALL))
    assert headers["accept-ranges"] == "bytes"
    etag, modified = headers["etag"], headers["last-modified"]
    mtime = os.stat(os.path.join(root, "files", "small.txt")).st_mtime
    assert email.utils.parsedate_to_datetime(modified).timestamp() == int(mtime)
    # The same connection goes on: a big one, then the app.
    status, _, body = request(conn, "/static/big.bin")
    assert (status, body == BIG) == (200, True)
    status, _, body = request(conn, "/elsewhere")
    assert (status, body) == (200, b"from the app\n")
    assert app_calls(root) == ["/elsewhere"]  # the files never reached the app
    assert request(conn, "/static/small.txt", **{"If-None-Match": etag})[0] == 304
    assert request(conn, "/static/small.txt", **{"If-None-Match": '"other"'})[0] == 200
    assert request(conn, "/static/small.txt", **{"If-Modified-Since": modified})[0] == 304
    status, headers, body = request(conn, "/static/small.txt", "HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(SMALL)))
    status, headers, body = request(conn, "/static/empty.txt")
    assert (status, body, headers["content-length"]) == (200, b"", "0")


def test_ranges(served: tuple) -> None:
    _, conn, _ = served
    status, headers, body = request(conn, "/static/big.bin", Range="bytes=100-199")
    assert (status, body) == (206, BIG[100:200])
    assert headers["content-range"] == f"bytes 100-199/{len(BIG)}"
    status, _, body = request(conn, "/static/big.bin", Range="bytes=-10")
    assert (status, body) == (206, BIG[-10:])
    status, _, body = request(conn, "/static/big.bin", Range=f"bytes={len(BIG) - 5}-")
    assert (status, body) == (206, BIG[-5:])
    status, headers, _ = request(conn, "/static/small.txt", Range="bytes=999-")
    assert (status, headers["content-range"]) == (416, f"bytes */{len(SMALL)}")
    status, _, body = request(conn, "/static/small.txt", Range="bytes=0-1,4-5")
    assert (status, body) == (200, SMALL)  # several ranges: the whole file
    status, _, body = request(
        conn, "/static/small.txt", Range="bytes=0-1", **{"If-Range": '"stale"'}
    )
    assert (status, body) == (200, SMALL)


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/sub/../../secret.txt",
        "/static/out.txt",  # a symbolic link out of the folder
        "/static/sub",  # a folder: no listing
        "/static/missing.txt",
        "/static/small.txt%00.png",
    ],
)
def test_nothing_outside_the_folder(served: tuple, path: str) -> None:
    _, conn, root = served
    status, _, body = request(conn, path)
    assert status == 404 and b"secret" not in body
    assert app_calls(root) == []


def test_a_link_inside_the_folder_and_other_methods(served: tuple) -> None:
    _, conn, root = served
    assert request(conn, "/static/in.txt")[::2] == (200, SMALL)
    status, headers, _ = request(conn, "/static/small.txt", "POST")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    assert app_calls(root) == []


def test_a_bad_mapping_stops_the_start_with_one_line() -> None:
    done = run_cli(["--static", "/static/=/no/such/folder", "m:app"])
    assert done.returncode == 2
    assert done.stderr == (
        "dumbwaiter: error: --static: '/static/=/no/such/folder': '/no/such/folder' is not "
        "a folder (got ['/static/=/no/such/folder'])\n"
    )
