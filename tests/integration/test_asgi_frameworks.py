"""Real ASGI frameworks (FastAPI, Starlette, Quart, Litestar, Django with
Channels) through real front servers: every cell of ``matrix.ASGI_CELLS``
(a front server, a gateway protocol, a mount point) is checked for every
behaviour of ``matrix.ASGI_BEHAVIOURS``, with the configuration ``dumbwaiter
config`` prints (and, for the WebSocket, a location block written here).

Each framework starts once (a module-scoped fixture): its app (under
``tests/apps/``) in one dumbwaiter process per ``--script-name`` setting the
cells need, listening on every cell's address, and every cell's front
server in front of it.  The apps offer one surface (``fastapi_app.py`` says
what), so one test body drives them all.  A behaviour a cell (or a
framework) cannot have is skipped with its "n/a: reason".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import pytest

from dumbwaiter import frontconf
from integration.fronts import (
    Front,
    apache,
    apache_conf,
    connect,
    get,
    lighttpd,
    lighttpd_conf,
    nginx,
    nginx_conf,
)
from integration.matrix import ASGI_CELLS, Cell
from serving import TESTS, Server, free_port, short_tmpdir, until
from wsclient import TEXT, WSClient

pytestmark = pytest.mark.integration

APP_PATH = os.pathsep.join([str(TESTS / "apps"), str(TESTS)])
UPLOAD_SIZE = 5 * 1024 * 1024
STARTED = "set by the lifespan startup"  # what each app's lifespan startup sets
#: Front servers that see a client gone only when it resets its connection.
RESET_TO_LEAVE = {"lighttpd"}


@dataclass(frozen=True)
class Framework:
    """One framework's test app.  ``title``: how its /hello names it.
    ``path_below_root``: its router rewrites ``scope["path"]`` to the path
    below ``root_path`` before the view sees it (Litestar's does:
    ``litestar/_asgi/asgi_router.py``)."""

    name: str
    app: str
    title: str
    path_below_root: bool = False


FRAMEWORKS = [
    Framework("fastapi", "fastapi_app:app", "FastAPI"),
    Framework("starlette", "fastapi_app:starlette_app", "Starlette"),
    Framework("quart", "quart_app:app", "Quart"),
    Framework("litestar", "litestar_app:app", "Litestar", path_below_root=True),
    Framework("django", "djangoproj.asgi:application", "Django"),
]


@dataclass
class Stack:
    """One framework, served to every cell: the dumbwaiters (by their
    ``--script-name``, None for none), the front servers (by cell id)."""

    framework: Framework
    disconnects: pathlib.Path
    servers: dict[str | None, Server] = field(default_factory=dict)
    fronts: dict[str, Front] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # cell id -> why it has no front


# -- starting the cells ---------------------------------------------------------
def mount_of(cell: Cell) -> str:
    return str(cell.options.get("mount", "/"))


def script_name_of(cell: Cell) -> str | None:
    """The ``--script-name`` dumbwaiter needs for ``cell`` (None: none)."""
    return mount_of(cell) if cell.script_name else None


def address_of(cell: Cell, root: str) -> str:
    if cell.transport == "unix":
        return f"unix:{root}/{cell.id}.sock"
    return f"127.0.0.1:{free_port()}"


def websocket_location(mount: str) -> str:
    """nginx's location for WebSockets below ``mount``: HTTP/1.1, and the
    client's Upgrade and Connection passed on (the generated block clears
    Connection, for upstream keep-alive)."""
    prefix = "" if mount == "/" else mount
    return (
        f"location {prefix}/ws/ {{\n"
        "    proxy_http_version 1.1;\n"
        "    proxy_set_header Upgrade $http_upgrade;\n"
        '    proxy_set_header Connection "upgrade";\n'
        "    proxy_set_header Host $http_host;\n"
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "    proxy_set_header X-Forwarded-Proto $scheme;\n"
        "    proxy_read_timeout 60s;\n"
        "    proxy_pass http://dumbwaiter;\n"
        "}\n"
    )


def start_front(cell: Cell, address: str) -> AbstractContextManager[Front]:
    root = short_tmpdir()
    port = free_port()
    mount = mount_of(cell)
    if cell.front == "lighttpd":
        snippet = frontconf.lighttpd(cell.protocol, address, mount=mount)
        return lighttpd(root, port, lighttpd_conf(root, port, snippet))
    if cell.front == "nginx":
        generated = frontconf.nginx(cell.protocol, address, mount=mount)
        if cell.protocol == "http":
            server = generated.server + websocket_location(mount)
            generated = frontconf.NginxSnippet(generated.http, server)
        return nginx(root, port, nginx_conf(root, port, generated))
    if cell.front == "apache":
        snippet = frontconf.apache(cell.protocol, address, mount=mount)
        return apache(root, port, apache_conf(root, port, snippet))
    raise AssertionError(f"no starter for {cell.front}")


@pytest.fixture(scope="module", params=FRAMEWORKS, ids=[f.name for f in FRAMEWORKS])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    framework: Framework = request.param
    root = short_tmpdir()
    disconnects = pathlib.Path(root, "disconnects")
    env = {"PYTHONPATH": APP_PATH, "DW_DISCONNECT_LOG": str(disconnects)}
    running = Stack(framework, disconnects)
    addresses = {cell.id: address_of(cell, root) for cell in ASGI_CELLS}
    with contextlib.ExitStack() as exits:
        for number, script_name in enumerate(dict.fromkeys(map(script_name_of, ASGI_CELLS))):
            args = [] if script_name is None else ["--script-name", script_name]
            for cell in ASGI_CELLS:
                if script_name_of(cell) == script_name:
                    args += [f"--{cell.protocol}", addresses[cell.id]]
            workdir = os.path.join(root, f"dw{number}")
            os.mkdir(workdir)
            server = Server(args, framework.app, env=env, workdir=workdir)
            running.servers[script_name] = exits.enter_context(server)
        for cell in ASGI_CELLS:
            try:
                front = exits.enter_context(start_front(cell, addresses[cell.id]))
            except pytest.skip.Exception as missing:  # (only that front's cells skip)
                running.missing[cell.id] = str(missing)
            else:
                running.fronts[cell.id] = front
        yield running


@dataclass
class Site:
    """One cell of one framework: its front server, the dumbwaiter behind
    it, and the path prefix the app is mounted under ("" at the root)."""

    cell: Cell
    framework: Framework
    front: Front
    server: Server
    prefix: str
    disconnects: pathlib.Path

    def logs(self) -> str:
        return f"{self.front.log()}\n--- dumbwaiter\n{self.server.log()}"


@pytest.fixture(params=ASGI_CELLS, ids=[cell.id for cell in ASGI_CELLS])
def site(request: pytest.FixtureRequest, stack: Stack) -> Site:
    cell: Cell = request.param
    if cell.id in stack.missing:
        pytest.skip(stack.missing[cell.id])
    mount = mount_of(cell)
    return Site(
        cell,
        stack.framework,
        stack.fronts[cell.id],
        stack.servers[script_name_of(cell)],
        "" if mount == "/" else mount,
        stack.disconnects,
    )


# -- the behaviours ---------------------------------------------------------------
def test_hello(site: Site) -> None:
    """The app at the cell's mount point: routed by the path below it, and
    told the mount point in ``root_path`` and the whole path in ``path``."""
    status, headers, body = get(site.front, f"{site.prefix}/hello")
    assert status == 200, (body, site.logs())
    assert headers["content-type"].startswith("text/plain")
    path = "/hello" if site.framework.path_below_root else f"{site.prefix}/hello"
    expected = f"hello from {site.framework.title}\nroot_path={site.prefix}\npath={path}\n"
    assert body.decode() == expected


def test_stream(site: Site) -> None:
    """The first chunk arrives through the front while the app still holds
    the rest (until the marker file exists), then the rest, byte-exact."""
    marker = f"go-{time.monotonic_ns()}"
    started = time.monotonic()
    conn = connect(site.front)
    try:
        conn.request("GET", f"{site.prefix}/stream?marker={marker}")
        response = conn.getresponse()
        assert response.status == 200, site.logs()
        first = response.readline()
        assert first == b"first\n", first
        # The app sends the rest once released, or after 10 s: a front that
        # buffered the response would deliver the first line only then.
        assert time.monotonic() - started < 8, "the first chunk came only with the rest"
        site.server.release(marker)
        assert first + response.read() == b"first\npart 0\npart 1\npart 2\nlast\n"
    finally:
        conn.close()


def test_upload(site: Site) -> None:
    upload = os.urandom(UPLOAD_SIZE)
    headers = {"Content-Type": "application/octet-stream"}
    status, _, body = get(site.front, f"{site.prefix}/upload", "POST", upload, headers)
    assert status == 200, (body, site.logs())
    assert json.loads(body) == {
        "length": len(upload),
        "sha256": hashlib.sha256(upload).hexdigest(),
    }


def test_state(site: Site) -> None:
    """What the lifespan startup set reaches the requests."""
    status, _, body = get(site.front, f"{site.prefix}/state")
    assert (status, body.decode()) == (200, STARTED), site.logs()


def test_disconnect(site: Site, record_property: Callable[[str, object], None]) -> None:
    """The client leaves while the app waits (its response begun): the front
    server drops its backend connection, and the app hears of it
    (``http.disconnect``, or the framework's cancellation of the view)."""
    tag = f"{site.cell.id}-{time.monotonic_ns()}"
    reason = site.cell.na.get("disconnect")
    # Where the app will not be told, it waits only a little longer than
    # the check below (a front server holding the request is slow to stop).
    seconds = 30 if reason is None else 2
    conn = connect(site.front)
    try:
        conn.request("GET", f"{site.prefix}/wait-disconnect?tag={tag}&seconds={seconds}")
        response = conn.getresponse()
        assert response.status == 200, site.logs()
        assert response.read1(100) == b"waiting\n"
        if site.cell.front in RESET_TO_LEAVE:
            # A reset, not a FIN: lighttpd takes a FIN for a client that
            # shut its sending side only, and still wants the response.
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()
    finally:
        conn.close()
    line = f"{tag} disconnected"

    def told() -> bool:
        with contextlib.suppress(FileNotFoundError):
            return line in site.disconnects.read_text().splitlines()
        return False

    if reason is not None:
        # The reason must still hold: found by running, not assumed.
        assert not until(told, seconds=1), f"the app was told; stale entry: {reason}"
        record_property("n/a", reason)  # (the report's cell: conftest.CHECKS_ITS_NA)
        return
    assert until(told, seconds=10), f"the app was not told:\n{site.logs()}"


def test_websocket(site: Site) -> None:
    """Two clients in the chat through the front: a message from one reaches
    both, each way; then each closes, answered with 1000."""
    address = ("127.0.0.1", site.front.port)
    path = f"{site.prefix}/ws/chat"
    host = f"127.0.0.1:{site.front.port}"
    first = WSClient.connect(address, path, host=host)
    try:
        second = WSClient.connect(address, path, host=host)
        try:
            first.send_text("hello from the first")
            assert first.receive() == (TEXT, b"hello from the first")
            assert second.receive() == (TEXT, b"hello from the first")
            second.send_text("and from the second")
            assert second.receive() == (TEXT, b"and from the second")
            assert first.receive() == (TEXT, b"and from the second")
            second.close()
            assert second.receive_close() == (1000, "")
        finally:
            second.shut()
        first.close()
        assert first.receive_close() == (1000, "")
    finally:
        first.shut()
