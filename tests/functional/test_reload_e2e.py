"""``--reload`` end to end: a real server follows edits of its app's source,
and a syntax error leaves the old code serving and says why.

The app (``app.py``) is in the server's own folder, its current directory,
which ``--reload`` watches; bytecode caching is off so a rewrite within the
same second is imported afresh.  Every file is replaced by rename, as
editors do, so a worker never imports a half-written file.
"""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Callable

from serving import Server, free_port, short_tmpdir

APP = """\
def app(environ, start_response):
    body = b"{version}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""
#: How long a change may take to serve: the watcher, then a worker's start.
RELOAD_SECONDS = 10.0


def write(folder: str, text: str) -> None:
    path = os.path.join(folder, "app.py")
    with open(path + ".tmp", "w") as out:
        out.write(text)
    os.replace(path + ".tmp", path)


def version(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def until(check: Callable[[], bool], seconds: float = RELOAD_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_reload_follows_edits_and_a_syntax_error_keeps_the_old_code() -> None:
    folder = short_tmpdir()
    write(folder, APP.format(version="one"))
    port = free_port()
    with Server(
        ["--http", f"127.0.0.1:{port}", "--workers", "1", "--reload"],
        "app:app",
        workdir=folder,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    ) as server:
        assert version(port) == "one"

        write(folder, APP.format(version="two"))
        assert until(lambda: version(port) == "two"), server.log()

        write(folder, APP.format(version="three").replace("def app(", "def app(:"))
        assert until(lambda: "reload failed" in server.log()), server.log()
        assert "SyntaxError" in server.log()
        assert version(port) == "two"

        write(folder, APP.format(version="four"))
        assert until(lambda: version(port) == "four"), server.log()
        assert server.proc.poll() is None
