"""dumbwaiter.flup: flup's WSGIServer arguments (the seed's script for real, behind
lighttpd, is in tests/integration/test_flup_compat.py)."""

from __future__ import annotations

from typing import Any

import pytest

import dumbwaiter.flup
from dumbwaiter.flup import FCGI_AUTHORIZER, FCGI_RESPONDER, WSGIServer
from dumbwaiter.protocols import Role


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [environ.get("EXTRA", "").encode()]


def captured(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_serve(application: Any, **options: Any) -> None:
        seen.update(options, application=application)

    monkeypatch.setattr(dumbwaiter.flup, "serve", fake_serve)
    assert WSGIServer(app, **kwargs).run() is False
    return seen


def test_unix_path_umask_threads_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = captured(
        monkeypatch,
        bindAddress="/tmp/x.sock",
        umask=0o002,
        maxThreads=3,
        roles=(FCGI_RESPONDER, FCGI_AUTHORIZER),
        multiplexed=True,
        debug=True,
    )
    assert seen["fastcgi"] == "unix:/tmp/x.sock"
    assert seen["socket_mode"] == 0o775
    assert seen["threads"] == 3
    assert seen["fastcgi_roles"] == {Role.RESPONDER, Role.AUTHORIZER}
    assert seen["fastcgi_multiplex"] is True
    assert seen["debug"] is True
    assert seen["application"] is app


def test_tcp_tuple_single_thread_and_fd0(monkeypatch: pytest.MonkeyPatch) -> None:
    assert captured(monkeypatch, bindAddress=("127.0.0.1", 9000))["fastcgi"] == "127.0.0.1:9000"
    assert captured(monkeypatch, bindAddress=("::1", 9000))["fastcgi"] == "[::1]:9000"
    assert captured(monkeypatch, multithreaded=False)["threads"] == 1
    seen = captured(monkeypatch)
    assert seen["fastcgi"] is None  # fd 0 from the web server, or CGI
    assert seen["fastcgi_multiplex"] is False  # flup's default


def test_environ_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    wrapped = captured(monkeypatch, environ={"EXTRA": "yes"})["application"]
    assert wrapped({}, lambda *a: None) == [b"yes"]
    assert wrapped({"EXTRA": "mine"}, lambda *a: None) == [b"mine"]


def test_pool_arguments_warn_and_unknown_ones_fail() -> None:
    with pytest.warns(UserWarning, match="minSpare"):
        WSGIServer(app, minSpare=1)
    with pytest.raises(TypeError, match="nonsense"):
        WSGIServer(app, nonsense=1)
