"""The WebSocket conformance check (``wsconformance.py``) through a real
nginx: the same cases as ``functional/test_ws_conformance.py``, with nginx's
HTTP proxy in front of dumbwaiter's echo, one test per group of cases (a
failure lists its cases).

nginx passes the handshake on (``proxy_http_version 1.1`` and the
``Upgrade``/``Connection`` headers set, as its WebSocket proxying guide
has it) and after the 101 copies bytes both ways without looking at them,
so every frame case should end as it does directly.  A case that differs
for a reason that is nginx's is listed in :data:`NGINX` with that reason
(a failure there is expected).  ``/`` goes to a dumbwaiter with
``--ws-max-size`` at the check's :data:`MAX_SIZE`, ``/plain/`` to one with
``--ws-no-compression`` too.  With ``DUMBWAITER_WS_CONFORMANCE=FILE`` a run
of every case writes its per-group table there."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from dumbwaiter.frontconf import NginxSnippet
from integration.fronts import Front, nginx, nginx_conf
from serving import Server, free_port, short_tmpdir
from wsconformance import CASES, GROUPS, MAX_SIZE, Result, Target, report, run_case, update_doc

pytestmark = pytest.mark.integration

APP = "wsconformance:app"
#: case id -> why it may not pass through nginx, for a reason that is nginx's
#: (a listed case may fail here, or pass).
NGINX = {
    # nginx speaks HTTP/1.1 to the backend (proxy_http_version 1.1): dumbwaiter
    # sees an HTTP/1.1 handshake, and nginx relays its 101 to the HTTP/1.0
    # client.  (Directly, dumbwaiter's own answer to HTTP/1.0 is checked.)
    "0.6": "nginx upgrades an HTTP/1.0 client (it asks the backend in HTTP/1.1)",
    # When the client half-closes an upgraded connection, nginx ends both
    # sides once what it read is passed on (ngx_http_upstream_process_upgraded),
    # so the backend's close frame is lost if it comes a moment later: a race.
    "7.1.7": "nginx closes the whole connection when the client half-closes it",
}
RESULTS: list[Result] = []

LOCATION = """\
location {path} {{
    proxy_pass http://{upstream};
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection "upgrade";
    proxy_set_header Host $http_host;
}}
"""


def snippet(port: int, plain: int) -> NginxSnippet:
    upstreams = (
        f"upstream ws_echo {{ server 127.0.0.1:{port}; }}\n"
        f"upstream ws_echo_plain {{ server 127.0.0.1:{plain}; }}\n"
    )
    locations = LOCATION.format(path="/", upstream="ws_echo")
    locations += LOCATION.format(path="/plain/", upstream="ws_echo_plain")
    return NginxSnippet(upstreams, locations)


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[Target, Front, list[Server]]]:
    port, plain, front_port = free_port(), free_port(), free_port()
    args = ["--ws-max-size", str(MAX_SIZE)]
    root = short_tmpdir()
    config = nginx_conf(root, front_port, snippet(port, plain))
    with (
        Server(["--http", f"127.0.0.1:{port}", *args], APP) as server,
        Server(["--http", f"127.0.0.1:{plain}", *args, "--ws-no-compression"], APP) as other,
        nginx(root, front_port, config) as front,
    ):
        address = ("127.0.0.1", front_port)
        yield Target(address, "/", MAX_SIZE, (address, "/plain/")), front, [server, other]
    doc = os.environ.get("DUMBWAITER_WS_CONFORMANCE")
    if doc and len(RESULTS) == len(CASES):
        update_doc(doc, "nginx", report(RESULTS, "through nginx", NGINX))


def slug(group: str) -> str:
    return group + "-" + re.sub(r"[^a-z0-9]+", "-", GROUPS[group].lower()).strip("-")


#: One test a group (the interop report, docs/interop.md, lists every
#: integration test; the cases' own table is docs/websocket-conformance.md).
BY_GROUP = {group: [c for c in CASES if c.group == group] for group in GROUPS}


@pytest.mark.parametrize("group", list(BY_GROUP), ids=[slug(g) for g in BY_GROUP])
def test_group(group: str, target: tuple[Target, Front, list[Server]]) -> None:
    where, front, servers = target
    results = [run_case(case, where) for case in BY_GROUP[group]]
    RESULTS.extend(results)
    if all(r.outcome == "skipped" for r in results):
        pytest.skip(results[0].reason if results else "no cases")
    failed = [r for r in results if r.outcome == "failed" and r.id not in NGINX]
    if failed:
        logs = "\n".join(server.log()[-3000:] for server in servers)
        lines = "\n".join(f"{r.id} {r.title}:\n    {r.reason}" for r in failed)
        pytest.fail(
            f"{len(failed)} of {len(results)} cases failed through nginx:\n{lines}\n"
            f"--- server logs\n{logs}\n--- nginx\n{front.log()[-3000:]}"
        )
