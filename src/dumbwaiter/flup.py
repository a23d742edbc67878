"""flup's ``WSGIServer``, on dumbwaiter.

A script written for flup keeps working with its import changed::

    from dumbwaiter.flup import WSGIServer   # was: from flup.server.fcgi import WSGIServer
    WSGIServer(myapp, bindAddress="/tmp/fcgi.sock").run()

The constructor takes flup's arguments and maps them onto dumbwaiter's
settings (see ``docs/migrating-from-flup.md``).  Arguments that only tuned
flup's own thread or process pools are accepted and ignored, with one
warning naming them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from .main import serve
from .protocols import Role
from .typing import StartResponse, WSGIApp

__all__ = ["FCGI_AUTHORIZER", "FCGI_FILTER", "FCGI_RESPONDER", "WSGIServer"]

FCGI_RESPONDER = 1
FCGI_AUTHORIZER = 2
FCGI_FILTER = 3

#: flup arguments with no meaning here: dumbwaiter's pool is fixed and bounded.
IGNORED = frozenset(
    {"minSpare", "maxSpare", "maxRequests", "maxChildren", "allowedServers", "timeout"}
)


class WSGIServer:
    """flup's FastCGI ``WSGIServer`` signature; :meth:`run` serves until stopped."""

    def __init__(
        self,
        application: WSGIApp,
        environ: dict[str, Any] | None = None,
        multithreaded: bool = True,
        multiprocess: bool = False,
        bindAddress: str | tuple[str, int] | None = None,
        umask: int | None = None,
        multiplexed: bool = False,
        debug: bool = False,
        roles: Iterable[int] = (FCGI_RESPONDER,),
        forceCGI: bool = False,
        maxThreads: int | None = None,
        **others: Any,
    ) -> None:
        unknown = sorted(set(others) - IGNORED)
        if unknown:
            raise TypeError(f"WSGIServer() got unexpected arguments: {', '.join(unknown)}")
        if others:
            warnings.warn(
                f"dumbwaiter.flup ignores {', '.join(sorted(others))}: the thread pool is "
                "fixed (--threads) and bounded (--queue-size)",
                stacklevel=2,
            )
        self.application = _with_environ(application, environ) if environ else application
        self.options: dict[str, Any] = {
            "debug": debug,
            "fastcgi_multiplex": multiplexed,
            "fastcgi_roles": frozenset(Role(role) for role in roles),
            "cgi": forceCGI,
        }
        if not multithreaded:
            self.options["threads"] = 1
        elif maxThreads is not None:
            self.options["threads"] = maxThreads
        if umask is not None:
            self.options["socket_mode"] = 0o777 & ~umask
        if isinstance(bindAddress, str):
            self.fastcgi: str | None = f"unix:{bindAddress}"
        elif bindAddress is not None:
            host, port = bindAddress
            self.fastcgi = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        else:
            self.fastcgi = None  # fd 0 from the web server, or CGI

    def run(self) -> bool:
        """Serve until SIGTERM or SIGINT.  Returns False: flup returned True
        after SIGHUP to ask for a restart; dumbwaiter never asks that."""
        serve(self.application, fastcgi=self.fastcgi, **self.options)
        return False


def _with_environ(app: WSGIApp, extra: dict[str, Any]) -> WSGIApp:
    """flup's ``environ=``: defaults added to every request's environ."""

    def with_defaults(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        for key, value in extra.items():
            environ.setdefault(key, value)
        return app(environ, start_response)

    return with_defaults
