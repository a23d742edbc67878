"""Static files mapped to the front server (`dumbwaiter config FRONT --static
URL=DIR`), through each real front: a file under the mapping is served by the
front (the app's access log never sees it), a path traversal out of the
folder gets nothing of what lies outside, and everything else reaches the
app.  HAProxy serves no files: its output says so."""

from __future__ import annotations

import contextlib
import os
import pathlib
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
from serving import Server, free_port, run_cli, short_tmpdir

pytestmark = pytest.mark.integration

FILE = b"a static file\n"
SECRET = b"outside the static folder\n"


def nginx_parts(text: str) -> NginxSnippet:
    http = text.split("# --- in the http { } block\n")[1]
    http, server = http.split("# --- in the server { } block\n")
    return NginxSnippet(http, server)


Starts = Callable[[str, int, str], AbstractContextManager[Front]]
FRONTS: dict[str, Starts] = {
    "lighttpd": lambda root, port, text: lighttpd(root, port, lighttpd_conf(root, port, text)),
    "nginx": lambda root, port, text: nginx(root, port, nginx_conf(root, port, nginx_parts(text))),
    "apache": lambda root, port, text: apache(root, port, apache_conf(root, port, text)),
    "caddy": lambda root, port, text: caddy(root, port, caddy_conf(root, port, text)),
    "h2o": lambda root, port, text: h2o(root, port, h2o_conf(root, port, text)),
    "haproxy": lambda root, port, text: haproxy(root, port, haproxy_conf(root, port, text)),
}


@contextlib.contextmanager
def site(front: str) -> Iterator[tuple[Front, Server, str, str]]:
    """The app (access log on) and ``front`` from `dumbwaiter config
    ... --static /static/=ROOT/files`, with ROOT/files/file.txt and a
    secret beside the folder."""
    root = short_tmpdir()
    os.chmod(root, 0o755)  # Apache's processes run as www-data
    files = pathlib.Path(root, "files")
    files.mkdir(mode=0o755)
    (files / "file.txt").write_bytes(FILE)
    pathlib.Path(root, "secret.txt").write_bytes(SECRET)
    address = f"unix:{root}/app.sock"
    done = run_cli(["config", front, "--fastcgi", address, "--static", f"/static/={files}"])
    assert done.returncode == 0, done.stderr
    args = ["--fastcgi", address, "--socket-mode", "666", "--access-log", f"{root}/access.log"]
    with Server(args, workdir=root) as backend:
        port = free_port()
        with FRONTS[front](root, port, done.stdout) as running:
            yield running, backend, root, done.stdout


def served_paths(root: str) -> str:
    time.sleep(1.5)  # the access log is written once a second
    return pathlib.Path(root, "access.log").read_text()


@pytest.mark.parametrize("front", ["lighttpd", "nginx", "apache", "caddy", "h2o"])
def test_the_front_serves_the_mapped_files_itself(front: str) -> None:
    with site(front) as (running, backend, root, _):
        status, _, body = get(running, "/static/file.txt")
        assert (status, body) == (200, FILE), running.log()
        status, _, body = get(running, "/hello")
        assert (status, body) == (200, b"Hello world\n"), running.log() + backend.log()
        for attempt in (
            "/static/../secret.txt",
            "/static/%2e%2e/secret.txt",
            "/static/..%2fsecret.txt",
            "/static/%2e%2e%2fsecret.txt",
        ):
            status, _, body = get(running, attempt)
            assert SECRET not in body, (attempt, status)
        log = served_paths(root)
        assert "GET /hello " in log
        assert "/static/file.txt" not in log


def test_haproxy_says_it_serves_no_files() -> None:
    with site("haproxy") as (running, _, root, text):
        assert "HAProxy serves no files: /static/ would reach the app." in text
        status, _, _ = get(running, "/static/file.txt")
        assert status == 404  # the app's answer: the output said so
        assert "/static/file.txt" in served_paths(root)
