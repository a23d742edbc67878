"""Server hooks: a module's functions, called at points of the server's life.

``--hooks myproj.dw_hooks`` (``hooks = "..."`` in the file) names a module
(or a file: ``--hooks gunicorn.conf.py``);
each of its functions named below is called at that point, with gunicorn's
names and arguments, so that integration recipes written for gunicorn
(OpenTelemetry's ``post_fork``, prometheus_client's ``child_exit``) work
unchanged.  ``server`` is the master
(:class:`~dumbwaiter.process.arbiter.Arbiter`: ``pid``, ``config``,
``num_workers``, ``workers``, ``log``); ``worker`` a :class:`WorkerInfo`;
``req`` a :class:`RequestInfo`; ``resp`` a :class:`ResponseInfo`.

In the master: ``on_starting(server)`` (before the workers, the app not
loaded), ``when_ready(server)`` (the first workers serve), ``on_reload(server)``
(SIGHUP), ``pre_fork(server, worker)``, ``child_exit(server, worker)`` (a
worker ended), ``nworkers_changed(server, new_value, old_value)``,
``on_exit(server)``.  In a worker: ``post_fork(server, worker)`` (just
forked; ``server`` is the master's object as it was at the fork),
``post_worker_init(worker)`` (the app loaded), ``worker_int(worker)``
(SIGINT or SIGQUIT), ``worker_abort(worker)`` (SIGABRT: hung, when its main
thread still runs Python), ``worker_exit(server, worker)``; in the thread
running each request, ``pre_request(worker, req)`` and
``post_request(worker, req, environ, resp)`` (after the response is sent;
without them, requests pass no hook code at all).

A hook that raises is logged with its name and the server goes on; one that
raises while the server starts (``on_starting``, ``when_ready``, and
``post_fork`` or ``post_worker_init`` in a first worker) stops the start
with one line.  Without ``--master`` (``--no-master``) the master's hooks
are not called.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import logging
import os
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .typing import StartResponse, WSGIApp

Environ = dict[str, Any]

__all__ = ["HOOK_NAMES", "HookError", "Hooks", "RequestInfo", "ResponseInfo", "WorkerInfo"]

log = logging.getLogger("dumbwaiter")

HOOK_NAMES = (
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
)


class HookError(Exception):
    """The hook module cannot be used, or a hook failed while the server
    started; the message is the one line to print."""


@dataclasses.dataclass
class WorkerInfo:
    """A worker, as the hooks see it: ``pid`` (0 before the fork), the
    master's ``ppid``, ``age`` (its number among the workers forked, from
    1), ``generation`` (one more per reload), ``log``."""

    pid: int
    ppid: int
    age: int
    generation: int
    log: logging.Logger = dataclasses.field(default=log, repr=False)


class RequestInfo:
    """A request, as ``pre_request`` and ``post_request`` see it."""

    __slots__ = ("environ", "method", "path", "query", "uri")

    def __init__(self, environ: Environ) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        self.path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        self.query: str = environ.get("QUERY_STRING", "")
        self.uri = self.path + ("?" + self.query if self.query else "")

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The request's header fields, as ``(NAME, value)``."""
        found = [
            (key[5:].replace("_", "-"), value)
            for key, value in self.environ.items()
            if key.startswith("HTTP_")
        ]
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if self.environ.get(key):
                found.append((key.replace("_", "-"), self.environ[key]))
        return found


class ResponseInfo:
    """The response, as ``post_request`` sees it (``"500 Internal Server
    Error"`` when the app raised before starting one)."""

    __slots__ = ("headers", "status")

    def __init__(self) -> None:
        self.status = "500 Internal Server Error"
        self.headers: list[tuple[str, str]] = []

    @property
    def status_code(self) -> int:
        return int(self.status.split(" ", 1)[0])


class Hooks:
    """The hook module's functions (none without one)."""

    def __init__(self, module: types.ModuleType | None = None) -> None:
        self.module = module
        self.functions: dict[str, Callable[..., Any]] = {}
        if module is not None:
            for name in HOOK_NAMES:
                function = getattr(module, name, None)
                if callable(function):
                    self.functions[name] = function

    @classmethod
    def load(cls, name: str | None, *, again: bool = False) -> Hooks:
        """Import the module ``name`` (again, for a reload), or run the file
        ``name`` when it ends in ``.py`` (a ``gunicorn.conf.py`` with its
        hooks); none for None."""
        if not name:
            return cls()
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, "")  # as the app's import does
        try:
            if name.endswith(".py"):
                module = types.ModuleType(os.path.basename(name)[:-3])
                module.__file__ = os.path.abspath(name)
                with open(name, "rb") as source:
                    code = compile(source.read(), module.__file__, "exec")
                exec(code, module.__dict__)  # as gunicorn runs its config file
            else:
                module = importlib.import_module(name)
                if again:
                    module = importlib.reload(module)
        except Exception as exc:
            raise HookError(
                f"--hooks {name}: cannot import it: {type(exc).__name__}: {exc}"
            ) from exc
        hooks = cls(module)
        hooks.warn_of_near_misses()
        return hooks

    def warn_of_near_misses(self) -> None:
        """A function named almost like a hook is probably one misspelled."""
        assert self.module is not None
        for name, value in vars(self.module).items():
            if name in HOOK_NAMES or not inspect.isfunction(value) or name.startswith("_"):
                continue
            if value.__module__ != self.module.__name__:
                continue  # imported, not defined there
            close = difflib.get_close_matches(name, HOOK_NAMES, n=1, cutoff=0.8)
            if close:
                log.warning(
                    "hooks %s: %s() is no hook; did you mean %s()?",
                    self.module.__name__,
                    name,
                    close[0],
                )

    def __contains__(self, name: str) -> bool:
        return name in self.functions

    def call(self, name: str, *args: Any) -> None:
        """Call hook ``name`` if there is one; an exception is logged."""
        function = self.functions.get(name)
        if function is None:
            return
        try:
            function(*args)
        except Exception:
            log.exception("hook %s raised", name)

    def call_at_start(self, name: str, *args: Any) -> None:
        """Call hook ``name`` while the server starts: an exception is a
        :class:`HookError`, which stops the start."""
        function = self.functions.get(name)
        if function is None:
            return
        try:
            function(*args)
        except Exception as exc:
            log.debug("hook %s raised", name, exc_info=True)
            raise HookError(f"hook {name} raised {type(exc).__name__}: {exc}") from exc

    def wrap(self, app: WSGIApp, worker: WorkerInfo) -> WSGIApp:
        """``app`` with ``pre_request`` and ``post_request`` around each
        call; ``app`` itself when the module has neither."""
        if "pre_request" not in self and "post_request" not in self:
            return app
        call = self.call

        def hooked(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            request = RequestInfo(environ)
            response = ResponseInfo()
            call("pre_request", worker, request)

            def starting(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
                response.status, response.headers = status, headers
                return start_response(status, headers, *exc_info)

            def done() -> None:
                call("post_request", worker, request, environ, response)

            try:
                result = app(environ, starting)
            except BaseException:
                done()
                raise
            return Answered(result, done)

        return hooked


class Answered:
    """The app's response iterable, with ``post_request`` once it is closed
    (PEP 3333: the server closes it when the response is sent, or failed)."""

    __slots__ = ("done", "result")

    def __init__(self, result: Iterable[bytes], done: Callable[[], None]) -> None:
        self.result = result
        self.done = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.result)

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.done()
