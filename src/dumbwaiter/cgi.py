"""CGI/1.1: serve exactly one request from the environment, stdin and stdout.

This is what happens when a web server runs dumbwaiter as a CGI script (fd 0
is not a socket and the CGI variables are set), as flup did.  The request goes
through the same WSGI gateway as every other protocol; only the stream that
carries the response differs: it writes a CGI response (``Status:`` line,
headers, blank line, body) to stdout.

``HTTP_PROXY`` is removed from the environ: in CGI it comes from a client's
``Proxy:`` header, and libraries would take it for the proxy setting
("httpoxy").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO

from .config import Config
from .protocols import Role
from .protocols.heads import cgi_head
from .request import Request
from .typing import WSGIApp
from .wsgi import WSGIGateway

__all__ = ["run_cgi"]

READ_BLOCK = 64 * 1024


class _CGIExchange:
    """The gateway's :class:`~dumbwaiter.typing.Exchange`, writing a CGI
    response to ``out``."""

    cancelled = False

    def __init__(self, request: Request, out: IO[bytes]) -> None:
        self.request = request
        self.out = out
        self.failed = False

    @property
    def peer(self) -> dict[str, str]:
        return {}

    def start(self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool) -> None:
        self.out.write(cgi_head(status, headers))
        self.out.write(body)
        if end:
            self.out.flush()

    def write(self, data: bytes) -> bool:
        self.out.write(data)
        return True

    def end(self) -> None:
        self.out.flush()

    def abort(self) -> None:
        # The web server sees the script fail (non-zero exit) after a
        # truncated body, which is the closest CGI has to a broken response.
        self.failed = True
        self.out.flush()

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        return False


def run_cgi(
    app: WSGIApp,
    environ: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
) -> int:
    """Serve one CGI request; return the exit status (0, or 1 if the
    response broke after it started)."""
    source = dict(os.environ if environ is None else environ)
    source.pop("HTTP_PROXY", None)
    stdin = sys.stdin.buffer if stdin is None else stdin
    stdout = sys.stdout.buffer if stdout is None else stdout
    request = Request(1, source, Role.RESPONDER, Config().spool_threshold)
    try:
        remaining = int(source.get("CONTENT_LENGTH") or 0)
    except ValueError:
        remaining = 0
    while remaining > 0:
        block = stdin.read(min(remaining, READ_BLOCK))
        if not block:
            break
        request.add_body(block)
        remaining -= len(block)
    request.finish()
    gateway = WSGIGateway(app, multithread=False)
    gateway.base["wsgi.run_once"] = True
    exchange = _CGIExchange(request, stdout)
    gateway(exchange)
    request.input.close()
    return 1 if exchange.failed else 0
