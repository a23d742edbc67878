"""dumbwaiter behind Apache 2.4: mod_proxy_fcgi, mod_proxy_scgi,
mod_proxy_uwsgi and mod_proxy_http, at / and under /app, with the config
`dumbwaiter config apache` prints."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator

import pytest

import dumbwaiter
from dumbwaiter import frontconf
from integration.fronts import (
    APACHE_MODULES,
    Front,
    apache,
    apache_conf,
    check_streaming,
    echo,
    fetch,
)
from serving import TESTS, Server, free_port, short_tmpdir

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


def test_mod_fcgid_spawns_dumbwaiter_on_fd0() -> None:
    """mod_fcgid starts dumbwaiter itself as www-data, with the listening
    socket on fd 0.  www-data cannot read this checkout or the venv (both may
    sit under /root), so the test runs Debian's /usr/bin/python3 on a copy of
    the package; FastCGI needs nothing beyond the standard library."""
    root = short_tmpdir()
    os.chmod(root, 0o755)
    lib = os.path.join(root, "lib")
    shutil.copytree(
        os.path.dirname(dumbwaiter.__file__),
        os.path.join(lib, "dumbwaiter"),
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(TESTS / "server_apps.py", lib)
    docs = os.path.join(root, "docs")
    os.mkdir(docs)
    script = os.path.join(docs, "app.fcgi")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexec /usr/bin/python3 -m dumbwaiter server_apps:app\n")
    os.chmod(script, 0o755)
    ipc = os.path.join(root, "fcgid")
    os.mkdir(ipc)
    shutil.chown(ipc, "www-data")
    port = free_port()
    snippet = (
        f"LoadModule fcgid_module {APACHE_MODULES}/mod_fcgid.so\n"
        f'FcgidIPCDir "{ipc}"\nFcgidProcessTableFile "{ipc}/shm"\n'
        f"FcgidInitialEnv PYTHONPATH {lib}\nFcgidInitialEnv DW_TEST_DIR {root}\n"
        f'DocumentRoot "{docs}"\n<Directory "{docs}">\n    Options +ExecCGI\n'
        "    SetHandler fcgid-script\n    Require all granted\n</Directory>\n"
    )
    with apache(root, port, apache_conf(root, port, snippet)) as front:
        info = echo(front, "/app.fcgi/echo/q?z=1")
        # mod_fcgid puts the script in SCRIPT_NAME: the app is mounted there.
        assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("/app.fcgi", "/echo/q")
        assert info["QUERY_STRING"] == "z=1"
        assert fetch(front, "/app.fcgi/hello") == (200, b"Hello world\n")
        upload = os.urandom(100_000)  # under FcgidMaxRequestLen's 128 KiB default
        info = echo(front, "/app.fcgi/echo", method="POST", body=upload)
        assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()
