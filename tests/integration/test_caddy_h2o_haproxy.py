"""dumbwaiter behind Caddy 2 (reverse_proxy, FastCGI transport and HTTP), h2o
(fastcgi.connect and proxy.reverse) and HAProxy (fcgi-app and HTTP), with
the configs `dumbwaiter config` prints."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from dumbwaiter import frontconf
from integration.fronts import (
    Front,
    caddy,
    caddy_conf,
    check_streaming,
    echo,
    fetch,
    h2o,
    h2o_conf,
    haproxy,
    haproxy_conf,
    lighttpd,
    lighttpd_conf,
)
from serving import TESTS, Server, free_port, short_tmpdir

pytestmark = pytest.mark.integration

Runner = Callable[[str, int, str], AbstractContextManager[Front]]
FRONTS: dict[str, tuple[Runner, Callable[[str, int, str], str], Callable[..., str]]] = {
    "caddy": (caddy, caddy_conf, frontconf.caddy),
    "h2o": (h2o, h2o_conf, frontconf.h2o),
    "haproxy": (haproxy, haproxy_conf, frontconf.haproxy),
}


@pytest.fixture(
    scope="module",
    params=[(f, p) for f in FRONTS for p in ("fastcgi", "http")],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def site(request: pytest.FixtureRequest) -> Iterator[tuple[Front, Server, str]]:
    front_name, protocol = request.param
    run, wrap, snippet = FRONTS[front_name]
    root = short_tmpdir()
    address = f"unix:{root}/dw.sock" if protocol == "fastcgi" else f"127.0.0.1:{free_port()}"
    with Server([f"--{protocol}", address], workdir=root) as backend:
        port = free_port()
        with run(root, port, wrap(root, port, snippet(protocol, address))) as front:
            yield front, backend, front_name


def test_paths_query_and_host(site: tuple[Front, Server, str]) -> None:
    front, _, _ = site
    info = echo(front, "/echo/a%20b?x=1&y=2", headers={"Host": f"127.0.0.1:{front.port}"})
    assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("", "/echo/a b")
    assert info["QUERY_STRING"] == "x=1&y=2"
    assert info["HTTP_HOST"] == f"127.0.0.1:{front.port}"
    assert info["SERVER_NAME"] == "127.0.0.1"
    assert info["REMOTE_ADDR"] == "127.0.0.1"


def test_upload_and_big_body(site: tuple[Front, Server, str]) -> None:
    front, _, _ = site
    upload = os.urandom(10 * 1024 * 1024)
    info = echo(
        front,
        "/echo",
        method="POST",
        body=upload,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()
    status, data = fetch(front, "/big")
    assert (status, data) == (200, bytes(range(256)) * 480)


def test_error_and_streaming(site: tuple[Front, Server, str]) -> None:
    front, backend, _ = site
    assert fetch(front, "/error")[0] == 500
    check_streaming(front, backend, "/stream?")


def test_h2o_fastcgi_spawn() -> None:
    """h2o starts dumbwaiter itself (fastcgi.spawn, socket on fd 0)."""
    root = short_tmpdir()
    port = free_port()
    snippet = frontconf.h2o("fastcgi", "unix:/unused", spawn="server_apps:app")
    env = {"PYTHONPATH": str(TESTS), "DW_TEST_DIR": root}
    with h2o(root, port, h2o_conf(root, port, snippet), env=env) as front:
        info = echo(front, "/echo/s?q=1")
        assert (info["SCRIPT_NAME"], info["PATH_INFO"], info["QUERY_STRING"]) == (
            "",
            "/echo/s",
            "q=1",
        )
        assert fetch(front, "/big") == (200, bytes(range(256)) * 480)


def test_lighttpd_http_proxy() -> None:
    root = short_tmpdir()
    address = f"127.0.0.1:{free_port()}"
    with Server(["--http", address], workdir=root) as backend:
        port = free_port()
        config = lighttpd_conf(root, port, frontconf.lighttpd("http", address))
        with lighttpd(root, port, config) as front:
            info = echo(front, "/echo/l?q=2")
            assert (info["PATH_INFO"], info["QUERY_STRING"]) == ("/echo/l", "q=2")
            upload = os.urandom(10 * 1024 * 1024)
            info = echo(front, "/echo", method="POST", body=upload)
            assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()
            assert fetch(front, "/big") == (200, bytes(range(256)) * 480)
            assert fetch(front, "/error")[0] == 500
            check_streaming(front, backend, "/stream?")
