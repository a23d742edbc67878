"""The hooks module's rules, without a server."""

from __future__ import annotations

import logging
import types
from typing import Any

import pytest

from dumbwaiter.hooks import HOOK_NAMES, HookError, Hooks, RequestInfo, WorkerInfo


def module(**functions: Any) -> types.ModuleType:
    mod = types.ModuleType("some_hooks")
    for name, function in functions.items():
        function.__module__ = "some_hooks"
        setattr(mod, name, function)
    return mod


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("201 Created", [("X-A", "1")])
    return [b"x"]


WORKER = WorkerInfo(10, 1, 1, 1)


def test_without_request_hooks_the_app_is_not_wrapped() -> None:
    """What 'the request hooks cost nothing' rests on: the app itself runs."""
    assert Hooks().wrap(app, WORKER) is app
    assert Hooks(module(post_fork=lambda server, worker: None)).wrap(app, WORKER) is app
    assert Hooks.load(None).functions == {}


def test_request_hooks_see_the_request_and_the_response() -> None:
    seen: list[Any] = []
    hooks = Hooks(
        module(
            pre_request=lambda worker, req: seen.append(("pre", req.method, req.uri)),
            post_request=lambda worker, req, environ, resp: seen.append(
                ("post", resp.status_code, resp.headers, req.headers, environ is req.environ)
            ),
        )
    )
    hooked = hooks.wrap(app, WORKER)
    environ = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/x",
        "QUERY_STRING": "a=1",
        "HTTP_X_TRACE": "t",
        "CONTENT_TYPE": "text/plain",
    }
    result = hooked(environ, lambda status, headers, *exc: None)
    assert seen == [("pre", "POST", "/app/x?a=1")]
    assert list(result) == [b"x"]
    result.close()  # type: ignore[attr-defined]
    assert seen[1] == (
        "post",
        201,
        [("X-A", "1")],
        [("X-TRACE", "t"), ("CONTENT-TYPE", "text/plain")],
        True,
    )
    assert len(seen) == 2


def test_post_request_after_an_app_error_says_500() -> None:
    seen: list[int] = []
    hooks = Hooks(module(post_request=lambda w, req, env, resp: seen.append(resp.status_code)))

    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        hooks.wrap(broken, WORKER)({"PATH_INFO": "/"}, lambda *a: None)
    assert seen == [500]


def test_a_raising_hook_is_logged_with_its_name(caplog: pytest.LogCaptureFixture) -> None:
    def bad(server: object) -> None:
        raise ValueError("boom")

    hooks = Hooks(module(on_reload=bad, when_ready=bad))
    with caplog.at_level(logging.ERROR, logger="dumbwaiter"):
        hooks.call("on_reload", None)
    assert "hook on_reload raised" in caplog.text
    with pytest.raises(HookError, match=r"^hook when_ready raised ValueError: boom$"):
        hooks.call_at_start("when_ready", None)
    hooks.call("on_exit", None)  # none: nothing happens


def test_a_near_miss_is_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    hooks = Hooks(module(post_forks=lambda s, w: None, helper=lambda: None))
    with caplog.at_level(logging.WARNING, logger="dumbwaiter"):
        hooks.warn_of_near_misses()
    assert "post_forks() is no hook; did you mean post_fork()?" in caplog.text
    assert "helper" not in caplog.text
    assert "post_forks" not in hooks.functions


def test_the_hook_names_are_gunicorns() -> None:
    assert set(HOOK_NAMES) == {
        "on_starting",
        "when_ready",
        "on_reload",
        "pre_fork",
        "post_fork",
        "post_worker_init",
        "worker_int",
        "worker_abort",
        "pre_request",
        "post_request",
        "child_exit",
        "worker_exit",
        "nworkers_changed",
        "on_exit",
    }
    assert RequestInfo({"PATH_INFO": "/"}).method == "GET"


def test_a_hook_file_is_run_as_gunicorn_runs_its_config(tmp_path: Any) -> None:
    path = tmp_path / "gunicorn.conf.py"
    path.write_text("workers = 3\n\ndef post_fork(server, worker):\n    return workers\n")
    hooks = Hooks.load(str(path))
    assert list(hooks.functions) == ["post_fork"]
    assert hooks.functions["post_fork"](None, None) == 3
    with pytest.raises(HookError, match=r"^--hooks .*missing.py: cannot import it: "):
        Hooks.load(str(tmp_path / "missing.py"))
