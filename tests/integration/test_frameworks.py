"""A real Django application through real lighttpd (FastCGI socket), mounted
at / and under /app.  (Flask runs in every cell of the interop matrix,
``test_matrix.py``: its form parsing and ``url_for`` links.)"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from dumbwaiter import frontconf
from integration.fronts import Front, check_streaming, fetch, lighttpd, lighttpd_conf
from serving import TESTS, Server, free_port, short_tmpdir

pytestmark = pytest.mark.integration

APPS = {"django": "djangoproj.wsgi:application"}


@pytest.fixture(
    scope="module",
    params=[(name, prefix) for name in APPS for prefix in ("/", "/app")],
    ids=lambda p: f"{p[0]}-{'root' if p[1] == '/' else 'prefix'}",
)
def site(request: pytest.FixtureRequest) -> Iterator[tuple[Front, Server, str]]:
    name, prefix = request.param
    root = short_tmpdir()
    sock = os.path.join(root, "app.sock")
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS / "apps"), str(TESTS)])}
    with Server(["--fastcgi", f"unix:{sock}"], APPS[name], env=env, workdir=root) as backend:
        port = free_port()
        with lighttpd(
            root,
            port,
            lighttpd_conf(root, port, frontconf.lighttpd("fastcgi", f"unix:{sock}", mount=prefix)),
        ) as front:
            yield front, backend, "" if prefix == "/" else prefix


def as_json(data: bytes) -> Any:
    return json.loads(data)


def test_get_with_query(site: tuple[Front, Server, str]) -> None:
    front, _, prefix = site
    status, data = fetch(front, prefix + "/query?a=1&a=2&b=%C3%A9")
    assert status == 200, front.log()
    info = as_json(data)
    assert info["args"] == {"a": ["1", "2"], "b": ["é"]}


def test_form_post(site: tuple[Front, Server, str]) -> None:
    front, _, prefix = site
    body = urllib.parse.urlencode({"name": "Zoë", "n": "3"}).encode()
    status, data = fetch(
        front, prefix + "/form", "POST", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200
    assert as_json(data)["form"] == {"name": ["Zoë"], "n": ["3"]}


def test_ten_mib_upload(site: tuple[Front, Server, str]) -> None:
    front, _, prefix = site
    upload = os.urandom(10 * 1024 * 1024)
    status, data = fetch(
        front, prefix + "/upload", "POST", upload, {"Content-Type": "application/octet-stream"}
    )
    assert status == 200
    assert as_json(data) == {"length": len(upload), "sha256": hashlib.sha256(upload).hexdigest()}


def test_big_response_byte_exact(site: tuple[Front, Server, str]) -> None:
    front, _, prefix = site
    status, data = fetch(front, prefix + "/big")
    assert status == 200
    assert data == bytes(range(256)) * 480


def test_streamed_response(site: tuple[Front, Server, str]) -> None:
    front, backend, prefix = site
    check_streaming(front, backend, f"{prefix}/stream?marker=")


def test_app_error_is_500(site: tuple[Front, Server, str]) -> None:
    front, backend, prefix = site
    status, data = fetch(front, prefix + "/error")
    assert status == 500
    assert b"failed on purpose" not in data  # no traceback to the client
    assert "failed on purpose" in backend.log()  # but in the error log


def test_generated_links_know_the_mount_point(site: tuple[Front, Server, str]) -> None:
    front, _, prefix = site
    status, data = fetch(front, prefix + "/link")
    assert status == 200
    assert data.decode() == prefix + "/target"
    status, data = fetch(front, data.decode())
    assert (status, data) == (200, b"target")
