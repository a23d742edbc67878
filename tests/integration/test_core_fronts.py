"""dumbwaiter behind real lighttpd and nginx (Debian's packages).

Every request here goes through the front server over real sockets; the
backend is the real ``python -m dumbwaiter`` process.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import threading
import time
from collections.abc import Iterator

import pytest

from dumbwaiter import frontconf
from dumbwaiter.frontconf import NginxSnippet
from integration.fronts import (
    Front,
    check_streaming,
    echo,
    get,
    lighttpd,
    lighttpd_conf,
    nginx,
    nginx_conf,
)
from serving import TESTS, Server, free_port, short_tmpdir

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["/", "/app"], ids=["root", "prefix"])
def lighttpd_socket(request: pytest.FixtureRequest) -> Iterator[tuple[Front, Server, str]]:
    """lighttpd fastcgi.server -> dumbwaiter on a unix socket."""
    prefix: str = request.param
    root = short_tmpdir()
    sock = os.path.join(root, "dw.sock")
    with Server(["--fastcgi", f"unix:{sock}", "--threads", "4"], workdir=root) as backend:
        port = free_port()
        config = lighttpd_conf(
            root, port, frontconf.lighttpd("fastcgi", f"unix:{sock}", mount=prefix)
        )
        with lighttpd(root, port, config) as front:
            yield front, backend, prefix


def mount(prefix: str, path: str) -> str:
    return path if prefix == "/" else prefix + path


def test_lighttpd_get_with_query(lighttpd_socket: tuple[Front, Server, str]) -> None:
    front, _, prefix = lighttpd_socket
    info = echo(front, mount(prefix, "/echo/x?a=1&b=%20"), headers={"Host": "example.org"})
    assert info["SCRIPT_NAME"] == ("" if prefix == "/" else "/app")
    assert info["PATH_INFO"] == "/echo/x"
    assert info["QUERY_STRING"] == "a=1&b=%20"
    assert info["REMOTE_ADDR"] == "127.0.0.1"
    assert info["HTTP_HOST"] == "example.org"
    assert info["SERVER_NAME"] == "example.org"
    assert info["wsgi.url_scheme"] == "http"


def test_lighttpd_form_post_and_upload(lighttpd_socket: tuple[Front, Server, str]) -> None:
    front, _, prefix = lighttpd_socket
    info = echo(
        front,
        mount(prefix, "/echo"),
        method="POST",
        body=b"name=x&v=%C3%A9",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert info["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert info["body_length"] == 15
    upload = os.urandom(10 * 1024 * 1024)
    info = echo(
        front,
        mount(prefix, "/echo"),
        method="POST",
        body=upload,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert info["body_length"] == len(upload)
    assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()


def test_lighttpd_big_response_byte_exact(lighttpd_socket: tuple[Front, Server, str]) -> None:
    front, _, prefix = lighttpd_socket
    status, _, body = get(front, mount(prefix, "/big"))
    assert status == 200
    assert body == bytes(range(256)) * 480


def test_lighttpd_streams(lighttpd_socket: tuple[Front, Server, str]) -> None:
    front, backend, prefix = lighttpd_socket
    check_streaming(front, backend, mount(prefix, "/stream?"))


def test_lighttpd_app_error_is_500(lighttpd_socket: tuple[Front, Server, str]) -> None:
    front, _, prefix = lighttpd_socket
    status, _, body = get(front, mount(prefix, "/error"))
    assert status == 500
    assert b"Traceback" not in body


def test_lighttpd_bin_path_spawns_and_balances() -> None:
    """lighttpd starts dumbwaiter itself (socket on fd 0), two processes."""
    root = short_tmpdir()
    port = free_port()
    snippet = frontconf.lighttpd(
        "fastcgi",
        f"unix:{root}/spawn.sock",
        spawn="server_apps:app",
        processes=2,
        environment={"PYTHONPATH": str(TESTS), "DW_TEST_DIR": root},
    )
    with lighttpd(root, port, lighttpd_conf(root, port, snippet)) as front:
        status, _, body = get(front, "/hello")
        assert (status, body) == (200, b"Hello world\n"), front.log()
        # lighttpd gives a request to the least loaded process, the first one
        # when all are idle; while one request is held there, the next must be
        # served by the other process.
        holder = threading.Thread(target=get, args=(front, "/block?go-spawn"))
        holder.start()
        started = pathlib.Path(root, "started")
        deadline = time.monotonic() + 10
        while not started.exists():
            assert time.monotonic() < deadline, front.log()
            time.sleep(0.01)
        held_pid = int(started.read_text().split()[1])
        status, _, body = get(front, "/pid")
        assert status == 200
        assert int(body) != held_pid, "both requests went to one process"
        pathlib.Path(root, "go-spawn").write_text("go")
        holder.join(30)


def test_lighttpd_authorizer_mode() -> None:
    root = short_tmpdir()
    sock = os.path.join(root, "auth.sock")
    secret = os.path.join(root, "secret")
    os.mkdir(secret)
    with open(os.path.join(secret, "file.txt"), "w") as f:
        f.write("the protected file\n")
    with Server(["--fastcgi", f"unix:{sock}"], "server_apps:authorize_everything", workdir=root):
        port = free_port()
        snippet = frontconf.lighttpd("fastcgi", f"unix:{sock}", mount="/secret", authorizer=root)
        config = lighttpd_conf(root, port, snippet)
        with lighttpd(root, port, config) as front:
            status, _, body = get(
                front, "/secret/file.txt", headers={"Authorization": "Bearer good"}
            )
            assert (status, body) == (200, b"the protected file\n"), front.log()
            status, headers, body = get(front, "/secret/file.txt")
            assert status == 401
            assert body == b"no\n"
            assert headers.get("www-authenticate") == "Bearer"


def test_lighttpd_overload_gives_503() -> None:
    root = short_tmpdir()
    sock = os.path.join(root, "busy.sock")
    with Server(
        ["--fastcgi", f"unix:{sock}", "--threads", "1", "--queue-size", "1"], workdir=root
    ) as backend:
        port = free_port()
        config = lighttpd_conf(root, port, frontconf.lighttpd("fastcgi", f"unix:{sock}"))
        with lighttpd(root, port, config) as front:
            held: list[int] = []

            def hold() -> None:
                held.append(get(front, "/block?go-busy")[0])

            threads = [threading.Thread(target=hold) for _ in range(2)]
            threads[0].start()
            deadline = time.monotonic() + 10
            while not backend.path("started").exists():
                assert time.monotonic() < deadline
                time.sleep(0.01)
            threads[1].start()
            time.sleep(0.3)
            started = time.monotonic()
            status, headers, _ = get(front, "/count")
            assert time.monotonic() - started < 1.0
            assert status == 503, front.log()
            assert headers.get("retry-after") == "1"
            assert all(line.startswith("block") for line in backend.calls())
            backend.release("go-busy")
            for thread in threads:
                thread.join(30)
            assert held == [200, 200]


@pytest.fixture(scope="module")
def nginx_keepconn() -> Iterator[tuple[Front, Server]]:
    root = short_tmpdir()
    sock = os.path.join(root, "dw.sock")
    with Server(["--fastcgi", f"unix:{sock}", "--threads", "4"], workdir=root) as backend:
        port = free_port()
        config = nginx_conf(root, port, frontconf.nginx("fastcgi", f"unix:{sock}"))
        with nginx(root, port, config) as front:
            yield front, backend


def test_nginx_fastcgi_keep_conn_reuses_connections(nginx_keepconn: tuple[Front, Server]) -> None:
    front, _ = nginx_keepconn
    connections = set()
    for n in range(30):
        info = echo(front, f"/echo/{n}?n={n}")
        assert info["PATH_INFO"] == f"/echo/{n}"
        assert info["SCRIPT_NAME"] == ""
        connections.add(info["dumbwaiter.connection"])
    assert len(connections) <= 2, connections  # one kept connection, not thirty


def test_nginx_fastcgi_paths_upload_big_error(nginx_keepconn: tuple[Front, Server]) -> None:
    front, _ = nginx_keepconn
    upload = os.urandom(10 * 1024 * 1024)
    info = echo(front, "/echo", method="POST", body=upload)
    assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()
    assert get(front, "/big")[2] == bytes(range(256)) * 480
    assert get(front, "/error")[0] == 500
    assert get(front, "/hello")[2] == b"Hello world\n"  # the pool connection survived


def test_nginx_fastcgi_streams(nginx_keepconn: tuple[Front, Server]) -> None:
    front, backend = nginx_keepconn
    check_streaming(front, backend, "/stream?")


def test_nginx_proxy_http_with_keepalive() -> None:
    root = short_tmpdir()
    backend_port = free_port()
    with Server(["--http", f"127.0.0.1:{backend_port}"], workdir=root) as backend:
        port = free_port()
        snippet = frontconf.nginx("http", f"127.0.0.1:{backend_port}")
        with nginx(root, port, nginx_conf(root, port, snippet)) as front:
            connections = set()
            for n in range(20):
                info = echo(front, f"/echo?n={n}", headers={"Host": "example.org"})
                assert info["QUERY_STRING"] == f"n={n}"
                assert info["HTTP_HOST"] == "example.org"
                connections.add(info["dumbwaiter.connection"])
            assert len(connections) <= 2, connections
            upload = os.urandom(3 * 1024 * 1024)
            info = echo(front, "/echo", method="POST", body=upload)
            assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()
            assert get(front, "/big")[2] == bytes(range(256)) * 480
            check_streaming(front, backend, "/stream?")


def test_nginx_stock_fastcgi_params_are_repaired() -> None:
    """With Debian's fastcgi_params untouched nginx sends SCRIPT_NAME = the
    whole path and no PATH_INFO; the app must still see itself at the root."""
    root = short_tmpdir()
    sock = os.path.join(root, "dw.sock")
    with Server(["--fastcgi", f"unix:{sock}"], workdir=root):
        port = free_port()
        # Not our generated config: Debian's fastcgi_params as they come.
        stock = NginxSnippet(
            f"upstream dumbwaiter {{ server unix:{sock}; }}\n",
            "location / { include fastcgi_params; fastcgi_pass dumbwaiter; }\n",
        )
        with nginx(root, port, nginx_conf(root, port, stock)) as front:
            info = echo(front, "/echo/deep/path?q=1")
            assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("", "/echo/deep/path")
            assert info["QUERY_STRING"] == "q=1"


def test_nginx_proxy_with_script_name_option_behind_a_prefix() -> None:
    """nginx proxies /app/... unchanged; --script-name /app splits it."""
    root = short_tmpdir()
    backend_port = free_port()
    with Server(["--http", f"127.0.0.1:{backend_port}", "--script-name", "/app"], workdir=root):
        port = free_port()
        snippet = frontconf.nginx("http", f"127.0.0.1:{backend_port}", mount="/app")
        with nginx(root, port, nginx_conf(root, port, snippet)) as front:
            info = echo(front, "/app/echo/x?z=9")
            assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("/app", "/echo/x")


@pytest.mark.parametrize("kind", ["scgi", "uwsgi"])
def test_nginx_scgi_and_uwsgi(kind: str) -> None:
    root = short_tmpdir()
    sock = os.path.join(root, f"{kind}.sock")
    with Server([f"--{kind}", f"unix:{sock}"], workdir=root) as backend:
        port = free_port()
        config = nginx_conf(root, port, frontconf.nginx(kind, f"unix:{sock}"))
        with nginx(root, port, config) as front:
            info = echo(front, "/echo/p?q=1", headers={"Host": "example.org"})
            assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("", "/echo/p")
            assert info["QUERY_STRING"] == "q=1"
            assert info["REMOTE_ADDR"] == "127.0.0.1"
            assert info["HTTP_HOST"] == "example.org"
            upload = os.urandom(10 * 1024 * 1024)
            info = echo(front, "/echo", method="POST", body=upload)
            assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()
            assert get(front, "/big")[2] == bytes(range(256)) * 480
            assert get(front, "/error")[0] == 500
            check_streaming(front, backend, "/stream?")


@pytest.mark.parametrize("kind", ["scgi", "uwsgi"])
def test_lighttpd_scgi_and_uwsgi(kind: str) -> None:
    root = short_tmpdir()
    sock = os.path.join(root, f"{kind}.sock")
    with Server([f"--{kind}", f"unix:{sock}"], workdir=root):
        port = free_port()
        config = lighttpd_conf(root, port, frontconf.lighttpd(kind, f"unix:{sock}"))

        with lighttpd(root, port, config) as front:
            info = echo(front, "/echo/l?q=2")
            assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("", "/echo/l"), front.log()
            assert info["QUERY_STRING"] == "q=2"
            upload = os.urandom(2 * 1024 * 1024)
            info = echo(front, "/echo", method="POST", body=upload)
            assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()
            assert get(front, "/big")[2] == bytes(range(256)) * 480
