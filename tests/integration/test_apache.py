"""dumbwaiter behind Apache 2.4: mod_proxy_fcgi, mod_proxy_scgi,
mod_proxy_uwsgi and mod_proxy_http, at / and under /app, with the config
`dumbwaiter config apache` prints."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest

from dumbwaiter import frontconf
from integration.fronts import Front, apache, apache_conf, check_streaming, echo, fetch
from serving import Server, free_port, short_tmpdir

pytestmark = pytest.mark.integration


@pytest.fixture(
    scope="module",
    params=[(k, m) for k in ("fastcgi", "scgi", "uwsgi", "http") for m in ("/", "/app")],
    ids=lambda p: f"{p[0]}-{'root' if p[1] == '/' else 'prefix'}",
)
def site(request: pytest.FixtureRequest) -> Iterator[tuple[Front, Server, str, str]]:
    protocol, mount = request.param
    root = short_tmpdir()
    # TCP: Apache's children run as www-data, which may not enter a private
    # temp folder to reach a unix socket.
    address = f"127.0.0.1:{free_port()}"
    args = [f"--{protocol}", address]
    if protocol == "http" and mount != "/":
        pass  # ProxyPass strips the prefix: the app sees itself at the root
    with Server(args, workdir=root) as backend:
        port = free_port()
        snippet = frontconf.apache(protocol, address, mount=mount)
        with apache(root, port, apache_conf(root, port, snippet)) as front:
            yield front, backend, protocol, "" if mount == "/" else mount


def test_paths_and_query(site: tuple[Front, Server, str, str]) -> None:
    front, _, protocol, prefix = site
    info = echo(front, f"{prefix}/echo/z?k=v")
    expected_script = "" if protocol == "http" else prefix
    assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == (expected_script, "/echo/z")
    assert info["QUERY_STRING"] == "k=v"
    assert info["REMOTE_ADDR"] == "127.0.0.1"


def test_upload_big_error_and_streaming(site: tuple[Front, Server, str, str]) -> None:
    front, backend, _, prefix = site
    upload = os.urandom(10 * 1024 * 1024)
    info = echo(
        front,
        f"{prefix}/echo",
        method="POST",
        body=upload,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()
    assert fetch(front, f"{prefix}/big") == (200, bytes(range(256)) * 480)
    assert fetch(front, f"{prefix}/error")[0] == 500
    check_streaming(front, backend, f"{prefix}/stream?")


def test_mod_authnz_fcgi_authorizer() -> None:
    """Apache asks dumbwaiter (AUTHORIZER role, PARAMS only, no STDIN): a 200
    lets the request through with the user from Variable-X-User, a 401 is
    the answer the client gets."""
    root = short_tmpdir()
    os.chmod(root, 0o755)  # Apache's children (www-data) serve the file below
    docs = os.path.join(root, "docs")
    os.makedirs(os.path.join(docs, "secret"))
    with open(os.path.join(docs, "secret", "file.txt"), "w") as f:
        f.write("the protected file\n")
    address = f"127.0.0.1:{free_port()}"
    with Server(["--fastcgi", address], "server_apps:authorize_everything", workdir=root):
        port = free_port()
        snippet = frontconf.apache("fastcgi", address, mount="/secret", authorizer=True)
        # Debug logging of mod_authnz_fcgi shows the user Apache took.
        extra = f'DocumentRoot "{docs}"\nLogLevel warn authnz_fcgi:debug\n'
        config = apache_conf(root, port, extra + snippet)
        with apache(root, port, config) as front:
            allowed = fetch(front, "/secret/file.txt", headers={"Authorization": "Bearer good"})
            assert allowed == (200, b"the protected file\n"), front.log()
            status, body = fetch(front, "/secret/file.txt")
            assert (status, body) == (401, b"no\n")
            assert "Setting user to 'alice'" in front.log()
