"""The interop matrix as data: the cells (a front server, a gateway protocol
and a variant of its setup) and the behaviours each cell is checked for.

``test_matrix.py`` runs every behaviour against every cell; ``conftest.py``
turns the results into the grid of ``docs/interop.md``.  A behaviour a cell
cannot have because of the front server (or the protocol) is listed in the
cell's ``na`` with the reason, and the test reports it as "n/a: reason"
rather than passing or vanishing.  Adding a front server setup is one entry
in ``CELLS`` (and, for a new front server, a starter in ``test_matrix.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Column id (the test function is ``test_<id>``) -> column title.
BEHAVIOURS: dict[str, str] = {
    "query": "GET ?query",
    "form": "form POST",
    "upload": "10 MiB upload",
    "big": "120 KiB body",
    "streaming": "streaming",
    "error": "error → 500",
    "mount": "/ and /app, url_for",
    "client": "client, host, HTTPS off",
    "tls": "HTTPS on (TLS)",
    "reuse": "connection reuse",
    "authorizer": "authorizer",
}

PROTOCOLS = {"fastcgi": "FastCGI", "scgi": "SCGI", "uwsgi": "uwsgi", "http": "HTTP"}


@dataclass(frozen=True)
class Cell:
    """One front server setup.

    ``transport``: ``unix`` or ``tcp`` (dumbwaiter listens there) or
    ``spawn`` (the front server starts dumbwaiter, socket on fd 0).
    ``script_name``: under a prefix the front passes the path unchanged, so
    dumbwaiter is started with ``--script-name`` (as the generated config
    says).  ``options``: extra arguments of the ``frontconf`` generator.
    ``serve``: extra dumbwaiter options (``--loop-only``)."""

    front: str
    protocol: str
    variant: str
    transport: str
    na: Mapping[str, str] = field(default_factory=dict)
    script_name: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    serve: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.variant.lower()).strip("-")
        return f"{self.front}-{self.protocol}-{slug}"

    @property
    def label(self) -> str:
        return f"{self.front} / {PROTOCOLS[self.protocol]}, {self.variant}"


# Reasons shared by several cells.  Each names what in the front server (or
# the protocol) rules the behaviour out.
ONE_SHOT = "n/a: {0} ends each response by closing the connection: one connection per request"
LIGHTTPD_REUSE = (
    "n/a: lighttpd's mod_fastcgi closes its backend connection after each request "
    "(no FCGI_KEEP_CONN)"
)
LIGHTTPD_AUTH = "n/a: lighttpd's authorizer mode belongs to mod_fastcgi"
NGINX_AUTH = "n/a: nginx has no FastCGI authorizer (auth_request makes an ordinary subrequest)"
APACHE_AUTH = "n/a: Apache's authorizer modules (mod_authnz_fcgi, mod_fcgid) speak FastCGI only"
CADDY_AUTH = "n/a: Caddy has no FastCGI authorizer (forward_auth makes an HTTP subrequest)"
H2O_AUTH = "n/a: h2o has no FastCGI authorizer role"
HAPROXY_AUTH = "n/a: HAProxy's fcgi-app has no authorizer role"


def _oneshot(protocol: str, authorizer: str) -> dict[str, str]:
    return {"reuse": ONE_SHOT.format(PROTOCOLS[protocol]), "authorizer": authorizer}


CELLS: list[Cell] = [
    Cell("lighttpd", "fastcgi", "unix socket", "unix", {"reuse": LIGHTTPD_REUSE}),
    Cell("lighttpd", "fastcgi", "bin-path spawn", "spawn", {"reuse": LIGHTTPD_REUSE}),
    Cell("lighttpd", "scgi", "TCP", "tcp", _oneshot("scgi", LIGHTTPD_AUTH)),
    Cell("lighttpd", "uwsgi", "unix socket", "unix", _oneshot("uwsgi", LIGHTTPD_AUTH)),
    Cell(
        "lighttpd",
        "fastcgi",
        "--loop-only, unix socket",
        "unix",
        {"reuse": LIGHTTPD_REUSE},
        serve=("--loop-only",),
    ),
    Cell(
        "lighttpd",
        "http",
        "mod_proxy, TCP",
        "tcp",
        {
            "reuse": "n/a: lighttpd's mod_proxy sends Connection: close to every backend",
            "authorizer": LIGHTTPD_AUTH,
        },
        script_name=True,
    ),
    Cell(
        "nginx",
        "fastcgi",
        "plain, TCP",
        "tcp",
        {
            "reuse": "n/a: without fastcgi_keep_conn (nginx's default, this variant) nginx "
            "closes the connection after each request",
            "authorizer": NGINX_AUTH,
        },
        options={"keepalive": 0},
    ),
    Cell(
        "nginx", "fastcgi", "keep_conn + keepalive, unix socket", "unix", {"authorizer": NGINX_AUTH}
    ),
    Cell("nginx", "scgi", "TCP", "tcp", _oneshot("scgi", NGINX_AUTH), script_name=True),
    Cell("nginx", "uwsgi", "unix socket", "unix", _oneshot("uwsgi", NGINX_AUTH), script_name=True),
    Cell(
        "nginx",
        "uwsgi",
        "--loop-only, unix socket",
        "unix",
        _oneshot("uwsgi", NGINX_AUTH),
        script_name=True,
        serve=("--loop-only",),
    ),
    Cell(
        "nginx",
        "fastcgi",
        "--loop-only, keep_conn + keepalive, unix socket",
        "unix",
        {"authorizer": NGINX_AUTH},
        serve=("--loop-only",),
    ),
    Cell(
        "nginx",
        "http",
        "keepalive, TCP",
        "tcp",
        {"authorizer": NGINX_AUTH},
        script_name=True,
    ),
    Cell("apache", "fastcgi", "mod_proxy_fcgi, TCP", "tcp"),
    Cell("apache", "fastcgi", "mod_proxy_fcgi, --loop-only, TCP", "tcp", serve=("--loop-only",)),
    Cell(
        "apache",
        "fastcgi",
        "mod_proxy_fcgi, unix socket",
        "unix",
        {"authorizer": "n/a: mod_authnz_fcgi reaches its authorizer over TCP only"},
    ),
    Cell("apache", "scgi", "mod_proxy_scgi, TCP", "tcp", _oneshot("scgi", APACHE_AUTH)),
    Cell("apache", "uwsgi", "mod_proxy_uwsgi, unix socket", "unix", _oneshot("uwsgi", APACHE_AUTH)),
    Cell(
        "apache",
        "http",
        "mod_proxy_http, TCP",
        "tcp",
        {"authorizer": APACHE_AUTH},
        script_name=True,
    ),
    Cell(
        "apache",
        "fastcgi",
        "mod_fcgid spawn",
        "spawn",
        {"reuse": "n/a: mod_fcgid connects to its process anew for each request"},
    ),
    Cell(
        "caddy",
        "fastcgi",
        "unix socket",
        "unix",
        {
            "reuse": "n/a: Caddy's FastCGI transport dials a new connection for each request",
            "authorizer": CADDY_AUTH,
        },
        script_name=True,
    ),
    Cell("caddy", "http", "TCP", "tcp", {"authorizer": CADDY_AUTH}, script_name=True),
    Cell(
        "h2o", "fastcgi", "fastcgi.connect, TCP", "tcp", {"authorizer": H2O_AUTH}, script_name=True
    ),
    Cell("h2o", "fastcgi", "fastcgi.spawn", "spawn", {"authorizer": H2O_AUTH}),
    Cell(
        "h2o",
        "http",
        "proxy.reverse, TCP",
        "tcp",
        {"authorizer": H2O_AUTH},
        script_name=True,
    ),
    Cell(
        "haproxy",
        "fastcgi",
        "fcgi-app, unix socket",
        "unix",
        {"authorizer": HAPROXY_AUTH},
        script_name=True,
    ),
    Cell(
        "haproxy",
        "http",
        "TCP",
        "tcp",
        {"authorizer": HAPROXY_AUTH},
        script_name=True,
    ),
]

BY_ID = {cell.id: cell for cell in CELLS}
assert len(BY_ID) == len(CELLS), "two cells with one id"


# -- the ASGI frameworks' matrix -----------------------------------------------
# ``test_asgi_frameworks.py`` runs FastAPI, Starlette, Quart, Litestar and
# Django (with Channels) through these cells, each behaviour in each; the
# app of each framework is under ``tests/apps/``.  A cell's ``options`` are
# ``frontconf`` arguments (``mount``); with ``script_name`` dumbwaiter is
# started with ``--script-name`` (the front passes the path unchanged).

#: Column id (the test function is ``test_<id>``) -> column title.
ASGI_BEHAVIOURS: dict[str, str] = {
    "hello": "GET, root_path and path",
    "stream": "streaming",
    "upload": "5 MiB upload",
    "state": "lifespan state",
    "disconnect": "client gone → app told",
    "websocket": "WebSocket chat",
}

#: Frameworks a behaviour does not apply to, and why.
ASGI_FRAMEWORK_NA: dict[str, dict[str, str]] = {
    "django": {
        "state": "n/a: Django has no lifespan (its ASGI handler refuses the lifespan scope)"
    },
}

WEBSOCKET_HTTP_ONLY = (
    "n/a: WebSockets are served on HTTP listeners (FastCGI, SCGI and uwsgi carry no upgrade); "
    "checked through nginx's proxy_pass"
)

ASGI_CELLS: list[Cell] = [
    Cell(
        "lighttpd",
        "fastcgi",
        "unix socket, under /app",
        "unix",
        {"websocket": WEBSOCKET_HTTP_ONLY},
        options={"mount": "/app"},
    ),
    Cell("nginx", "uwsgi", "unix socket", "unix", {"websocket": WEBSOCKET_HTTP_ONLY}),
    Cell("nginx", "scgi", "TCP", "tcp", {"websocket": WEBSOCKET_HTTP_ONLY}),
    Cell(
        "nginx",
        "http",
        "proxy_pass, under /app, TCP",
        "tcp",
        script_name=True,
        options={"mount": "/app"},
    ),
    Cell(
        "apache",
        "fastcgi",
        "mod_proxy_fcgi, TCP",
        "tcp",
        {
            "disconnect": "n/a: while it waits for the response, mod_proxy_fcgi watches its "
            "backend only: a client gone (closed or reset) is noticed at the next write to it",
            "websocket": WEBSOCKET_HTTP_ONLY,
        },
    ),
]

ASGI_BY_ID = {cell.id: cell for cell in ASGI_CELLS}
assert len(ASGI_BY_ID) == len(ASGI_CELLS), "two ASGI cells with one id"
