"""The interop matrix: every cell of ``matrix.CELLS`` (a front server, a
gateway protocol, a setup) is checked for every behaviour of
``matrix.BEHAVIOURS``, with the configuration ``dumbwaiter config`` prints.

Each cell starts once (a module-scoped fixture): dumbwaiter serving
``server_apps:with_flask`` (or the front server spawning it), and the front
server on a plain port and, where it applies, a TLS port.  The mount and
authorizer checks start a second front server of the same kind.  A
behaviour the cell's front server cannot have is skipped with the cell's
"n/a: reason", which the report shows as such.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pytest

import dumbwaiter
from dumbwaiter import frontconf
from integration.fronts import (
    LIGHTTPD_MODULES,
    Front,
    Tls,
    apache,
    apache_conf,
    caddy,
    caddy_conf,
    check_streaming,
    echo,
    fetch,
    get,
    h2o,
    h2o_conf,
    haproxy,
    haproxy_conf,
    lighttpd,
    lighttpd_conf,
    nginx,
    nginx_conf,
    required,
    self_signed,
)
from integration.matrix import CELLS, Cell
from serving import TESTS, Server, free_port, short_tmpdir

pytestmark = pytest.mark.integration

APP = "server_apps:with_flask"
APP_PATH = os.pathsep.join([str(TESTS), str(TESTS / "apps")])
#: What Apache's www-data processes run (they cannot read a venv under /root).
SYSTEM_PYTHON = "/usr/bin/python3"
Certificates = tuple[str, str, str]


@dataclass
class Site:
    """One running cell: the front server, and where the app's markers live."""

    cell: Cell
    front: Front
    markers: str
    address: str  # dumbwaiter's, "" when the front server spawns it

    def release(self, name: str) -> None:
        pathlib.Path(self.markers, name).write_text("go\n")


# -- starting a cell ---------------------------------------------------------
Starter = Callable[[Cell, str, int, Tls | None, str, str], AbstractContextManager[Front]]


def start_lighttpd(
    cell: Cell, root: str, port: int, tls: Tls | None, mount: str, address: str
) -> AbstractContextManager[Front]:
    if cell.transport == "spawn":
        environment = {"PYTHONPATH": APP_PATH, "DW_TEST_DIR": root}
        snippet = frontconf.lighttpd(
            "fastcgi", f"unix:{root}/spawn.sock", mount=mount, spawn=APP, environment=environment
        )
    else:
        snippet = frontconf.lighttpd(cell.protocol, address, mount=mount)
    config = lighttpd_conf(root, port, snippet, tls)
    return lighttpd(root, port, config, tls_port=tls.port if tls else None)


def start_nginx(
    cell: Cell, root: str, port: int, tls: Tls | None, mount: str, address: str
) -> AbstractContextManager[Front]:
    snippet = frontconf.nginx(cell.protocol, address, mount=mount, **cell.options)
    return nginx(
        root, port, nginx_conf(root, port, snippet, tls), tls_port=tls.port if tls else None
    )


def start_apache(
    cell: Cell, root: str, port: int, tls: Tls | None, mount: str, address: str
) -> AbstractContextManager[Front]:
    if cell.transport == "spawn":
        environment = {"PYTHONPATH": www_data_lib(), "DW_TEST_DIR": root}
        snippet = frontconf.apache(
            "fastcgi", "", mount=mount, spawn=APP, python=SYSTEM_PYTHON, environment=environment
        )
        # mod_fcgid's sockets and shared memory: somewhere www-data may write.
        ipc = os.path.join(root, "fcgid")
        os.mkdir(ipc)
        shutil.chown(ipc, "www-data")
        snippet = f'FcgidIPCDir "{ipc}"\nFcgidProcessTableFile "{ipc}/shm"\n' + snippet
    else:
        snippet = frontconf.apache(cell.protocol, address, mount=mount)
    return apache(
        root, port, apache_conf(root, port, snippet, tls), tls_port=tls.port if tls else None
    )


def start_caddy(
    cell: Cell, root: str, port: int, tls: Tls | None, mount: str, address: str
) -> AbstractContextManager[Front]:
    snippet = frontconf.caddy(cell.protocol, address, mount=mount)
    return caddy(
        root, port, caddy_conf(root, port, snippet, tls), tls_port=tls.port if tls else None
    )


def start_h2o(
    cell: Cell, root: str, port: int, tls: Tls | None, mount: str, address: str
) -> AbstractContextManager[Front]:
    env = None
    if cell.transport == "spawn":
        snippet = frontconf.h2o("fastcgi", "", mount=mount, spawn=APP)
        env = {"PYTHONPATH": APP_PATH, "DW_TEST_DIR": root}
    else:
        snippet = frontconf.h2o(cell.protocol, address, mount=mount)
    config = h2o_conf(root, port, snippet, tls)
    return h2o(root, port, config, tls_port=tls.port if tls else None, env=env)


def start_haproxy(
    cell: Cell, root: str, port: int, tls: Tls | None, mount: str, address: str
) -> AbstractContextManager[Front]:
    snippet = frontconf.haproxy(cell.protocol, address, mount=mount)
    return haproxy(
        root, port, haproxy_conf(root, port, snippet, tls), tls_port=tls.port if tls else None
    )


STARTERS: dict[str, Starter] = {
    "lighttpd": start_lighttpd,
    "nginx": start_nginx,
    "apache": start_apache,
    "caddy": start_caddy,
    "h2o": start_h2o,
    "haproxy": start_haproxy,
}


@functools.cache
def www_data_lib() -> str:
    """A copy of dumbwaiter, the test apps and Flask that Apache's www-data
    processes can read (this checkout and its venv may sit under /root).
    Debian's python3 runs it: FastCGI needs nothing beyond the standard
    library, and Flask is pure Python."""
    lib = short_tmpdir()
    os.chmod(lib, 0o755)
    skip = shutil.ignore_patterns("__pycache__")
    package = os.path.dirname(dumbwaiter.__file__)
    shutil.copytree(package, os.path.join(lib, "dumbwaiter"), ignore=skip)
    # A compiled build (setup.py) keeps mypyc's shared runtime beside the package.
    for runtime in pathlib.Path(package).parent.glob("*__mypyc*"):
        shutil.copy(runtime, lib)
    shutil.copy(TESTS / "server_apps.py", lib)
    shutil.copy(TESTS / "apps" / "flask_app.py", lib)
    for name in ("flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        source = os.path.dirname(spec.origin)
        shutil.copytree(source, os.path.join(lib, name), ignore=skip)
    return lib


def tls_for(cell: Cell, certificates: Certificates | None) -> Tls | None:
    """The TLS listener this cell's front gets, if it can have one here."""
    if certificates is None or "tls" in cell.na:
        return None
    if cell.front == "lighttpd" and not os.path.exists(f"{LIGHTTPD_MODULES}/mod_openssl.so"):
        return None
    return Tls(free_port(), *certificates)


@contextlib.contextmanager
def serve(cell: Cell, mount: str = "/", certificates: Certificates | None = None) -> Iterator[Site]:
    """Run ``cell`` with the app at ``mount``: dumbwaiter (unless the front
    server spawns it) and the front server, each in a fresh folder."""
    root = short_tmpdir()
    if cell.front == "apache":
        # Apache's processes run as www-data: they must reach the socket, and
        # spawned apps must reach (and write) their markers.
        os.chmod(root, 0o777 if cell.transport == "spawn" else 0o711)
    address = ""
    with contextlib.ExitStack() as stack:
        if cell.transport != "spawn":
            if cell.transport == "unix":
                address = f"unix:{root}/dw.sock"
            else:
                address = f"127.0.0.1:{free_port()}"
            args = [f"--{cell.protocol}", address, "--threads", "4", *cell.serve]
            if cell.transport == "unix":
                args += ["--socket-mode", "666"]
            if mount != "/" and cell.script_name:
                args += ["--script-name", mount]
            env = {"PYTHONPATH": APP_PATH}
            stack.enter_context(Server(args, APP, env=env, workdir=root))
        port = free_port()
        tls = tls_for(cell, certificates)
        front = stack.enter_context(STARTERS[cell.front](cell, root, port, tls, mount, address))
        yield Site(cell, front, root, address)


@pytest.fixture(scope="session")
def certificates() -> Certificates | None:
    folder = short_tmpdir()
    os.chmod(folder, 0o755)
    return self_signed(folder)


@pytest.fixture(scope="module", params=CELLS, ids=[cell.id for cell in CELLS])
def site(request: pytest.FixtureRequest, certificates: Certificates | None) -> Iterator[Site]:
    with serve(request.param, certificates=certificates) as running:
        yield running


# -- the behaviours ----------------------------------------------------------
def test_query(site: Site) -> None:
    info = echo(site.front, "/echo/a%20b?x=1&y=%C3%A9&z")
    assert info["REQUEST_METHOD"] == "GET"
    assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("", "/echo/a b")
    assert info["QUERY_STRING"] == "x=1&y=%C3%A9&z"


def test_form(site: Site) -> None:
    body = urllib.parse.urlencode({"name": "Zoë", "n": "3"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, data = fetch(site.front, "/form", "POST", body, headers)
    assert status == 200, (data, site.front.log())
    assert json.loads(data)["form"] == {"name": ["Zoë"], "n": ["3"]}


def test_upload(site: Site) -> None:
    upload = os.urandom(10 * 1024 * 1024)
    headers = {"Content-Type": "application/octet-stream"}
    info = echo(site.front, "/echo", method="POST", body=upload, headers=headers)
    assert info["body_length"] == len(upload)
    assert info["body_sha256"] == hashlib.sha256(upload).hexdigest()


def test_big(site: Site) -> None:
    assert fetch(site.front, "/big") == (200, bytes(range(256)) * 480)


def test_streaming(site: Site) -> None:
    check_streaming(site.front, site, "/stream?")


def test_error(site: Site) -> None:
    status, body = fetch(site.front, "/error")
    assert status == 500
    assert b"failed on purpose" not in body  # no traceback for the client


def check_mount(front: Front, prefix: str) -> None:
    info = echo(front, f"{prefix}/echo/m?k=v")
    assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == (prefix, "/echo/m")
    assert info["QUERY_STRING"] == "k=v"
    status, link = fetch(front, f"{prefix}/link")  # Flask's url_for("target")
    assert (status, link.decode()) == (200, f"{prefix}/target")
    assert fetch(front, link.decode()) == (200, b"target")


def test_mount(site: Site) -> None:
    check_mount(site.front, "")
    with serve(site.cell, mount="/app") as prefixed:
        check_mount(prefixed.front, "/app")


def test_client(site: Site) -> None:
    """From 127.0.0.2 to 127.0.0.1: the client's address, the Host it sent,
    and no TLS."""
    host = f"127.0.0.1:{site.front.port}"
    info = echo(site.front, "/echo", headers={"Host": host}, source="127.0.0.2")
    assert info["HTTP_HOST"] == (host_without_port(host) if host_is_cut(site.cell) else host)
    assert info["SERVER_NAME"] == "127.0.0.1"
    assert info["SERVER_PORT"] == str(site.front.port)
    assert info["HTTPS"] in (None, "", "off")
    assert info["wsgi.url_scheme"] == "http"
    if site.cell.protocol == "http":
        # The proxy (on this machine: trusted by default) says who in X-Forwarded-For.
        assert (info["HTTP_X_FORWARDED_FOR"] or "").split(",")[-1].strip() == "127.0.0.2"
    assert info["REMOTE_ADDR"] == "127.0.0.2"


def host_is_cut(cell: Cell) -> bool:
    """Debian's nginx params files (a security fix of 2025) send HTTP_HOST as
    ``$host``: the Host header without its port."""
    if cell.front != "nginx" or cell.protocol == "http":
        return False
    params = pathlib.Path(f"/etc/nginx/{cell.protocol}_params").read_text()
    return re.search(r"^\s*\w+_param\s+HTTP_HOST\s+\$host;", params, re.MULTILINE) is not None


def host_without_port(host: str) -> str:
    return host.rpartition(":")[0]


def test_tls(site: Site, certificates: Certificates | None) -> None:
    if certificates is None:
        required("openssl (for a test certificate)", "openssl")
    if site.front.tls_port is None:
        required("lighttpd's mod_openssl", "lighttpd-mod-openssl")
    port = site.front.tls_port
    host = f"127.0.0.1:{port}"
    info = echo(site.front, "/echo", headers={"Host": host}, tls=True)
    assert info["HTTP_HOST"] == (host_without_port(host) if host_is_cut(site.cell) else host)
    assert str(info["HTTPS"]).lower() == "on"
    assert info["wsgi.url_scheme"] == "https"
    assert info["SERVER_PORT"] == str(port)


def test_reuse(site: Site, record_property: Callable[[str, object], None]) -> None:
    """Six requests, each on a new client connection: a front that keeps its
    backend connections sends them over fewer connections."""
    requests = 6
    seen = set()
    for _ in range(requests):
        info = echo(site.front, "/echo")
        seen.add((info["pid"], info["dumbwaiter.connection"]))
    reason = site.cell.na.get("reuse")
    if reason is not None:
        # The reason must still hold: it was found by running, not assumed.
        assert len(seen) == requests, f"connections were reused; stale entry: {reason}"
        record_property("n/a", reason)  # (the report's cell: conftest.CHECKS_ITS_NA)
        return
    assert len(seen) <= requests // 2, seen


# -- the authorizer ------------------------------------------------------------
def secret_files(root: str) -> str:
    """``root/docs/secret/file.txt``, readable by the front server; the docs folder."""
    docs = os.path.join(root, "docs")
    os.makedirs(os.path.join(docs, "secret"))
    pathlib.Path(docs, "secret", "file.txt").write_text("the protected file\n")
    return docs


def lighttpd_authorizer(site: Site, root: str, port: int) -> AbstractContextManager[Front]:
    """lighttpd's FastCGI authorizer mode in front of static files."""
    docs = secret_files(root)
    if site.cell.transport == "spawn":
        environment = {"PYTHONPATH": APP_PATH, "DW_TEST_DIR": root}
        snippet = frontconf.lighttpd(
            "fastcgi",
            f"unix:{root}/auth.sock",
            mount="/secret",
            authorizer=docs,
            spawn=APP,
            environment=environment,
        )
    else:
        snippet = frontconf.lighttpd("fastcgi", site.address, mount="/secret", authorizer=docs)
    config = lighttpd_conf(root, port, snippet).replace(
        f'server.document-root = "{root}"', f'server.document-root = "{docs}"'
    )
    return lighttpd(root, port, config)


def apache_authorizer(site: Site, root: str, port: int) -> AbstractContextManager[Front]:
    """mod_authnz_fcgi, or mod_fcgid's access checker for the spawning cell,
    in front of static files (served by www-data)."""
    os.chmod(root, 0o777)
    docs = secret_files(root)
    if site.cell.transport == "spawn":
        script = os.path.join(root, "authorizer")
        lib = www_data_lib()
        command = f"{SYSTEM_PYTHON} -m dumbwaiter {APP}"
        pathlib.Path(script).write_text(f"#!/bin/sh\nexec {command}\n")
        os.chmod(script, 0o755)
        environment = {"PYTHONPATH": lib, "DW_TEST_DIR": root}
        snippet = frontconf.apache(
            "fastcgi",
            "",
            mount="/secret",
            authorizer=True,
            spawn=APP,
            python=SYSTEM_PYTHON,
            environment=environment,
            script=script,
        )
        ipc = os.path.join(root, "fcgid")
        os.mkdir(ipc)
        shutil.chown(ipc, "www-data")
        extra = f'FcgidIPCDir "{ipc}"\nFcgidProcessTableFile "{ipc}/shm"\n'
    else:
        snippet = frontconf.apache("fastcgi", site.address, mount="/secret", authorizer=True)
        # Debug logging of mod_authnz_fcgi shows the user Apache took.
        extra = "LogLevel warn authnz_fcgi:debug\n"
    extra += f'DocumentRoot "{docs}"\n'
    return apache(root, port, apache_conf(root, port, extra + snippet))


AUTHORIZERS: dict[str, Callable[[Site, str, int], AbstractContextManager[Front]]] = {
    "lighttpd": lighttpd_authorizer,
    "apache": apache_authorizer,
}


def test_authorizer(site: Site) -> None:
    """dumbwaiter as the front's FastCGI authorizer for static files: a 200
    lets the request through, a 401 (with its header) is the answer."""
    root = short_tmpdir()
    with AUTHORIZERS[site.cell.front](site, root, free_port()) as front:
        allowed = fetch(front, "/secret/file.txt", headers={"Authorization": "Bearer good"})
        assert allowed == (200, b"the protected file\n"), front.log()
        status, headers, body = get(front, "/secret/file.txt")
        assert status == 401
        assert headers.get("www-authenticate") == "Bearer"
        if site.cell.transport == "spawn" and site.cell.front == "apache":
            # mod_fcgid answers a refusal with Apache's own page.
            assert b"<title>401 Unauthorized</title>" in body
        else:
            assert body == b"no\n"
        if site.cell.front == "apache" and site.cell.transport != "spawn":
            assert "Setting user to 'alice'" in front.log()
