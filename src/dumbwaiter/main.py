"""Start serving: choose the mode, bind the listeners, run, clean up.

The modes, decided once here:

* listeners given (``--fastcgi``/``--http``): bind them and serve;
* none given, and fd 0 is a listening socket: a web server spawned us
  (lighttpd ``bin-path``, mod_fcgid, FastCGI's ``FCGI_LISTENSOCK_FILENO``):
  serve FastCGI on it, admitting only ``FCGI_WEB_SERVER_ADDRS`` on TCP;
* none given, fd 0 is not a socket, and CGI variables are set: serve that one
  request as CGI;
* otherwise: HTTP on 127.0.0.1:8000, so a newcomer sees a page at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from typing import Any

from .config import Config
from .server.sockets import Address, bind, close_all, inherited_listener, parse_address
from .server.worker import PROTOCOLS, Listener, run_worker
from .wsgi import WSGIApp

__all__ = ["DEFAULT_HTTP", "run", "serve"]

log = logging.getLogger("dumbwaiter")

DEFAULT_HTTP = "127.0.0.1:8000"


def serve(
    app: WSGIApp,
    *,
    fastcgi: str | list[str] | None = None,
    http: str | list[str] | None = None,
    **options: Any,
) -> None:
    """Serve ``app`` until stopped (SIGTERM, SIGINT); the Python API.

    ``fastcgi`` and ``http`` take one address or a list; ``options`` are the
    settings of :class:`~dumbwaiter.config.Config` by name (``threads=4``,
    ``socket_mode=0o666`` ...).  Raises :class:`~dumbwaiter.config.ConfigError`
    or :class:`~dumbwaiter.server.sockets.ListenError` when it cannot start.
    """
    config = Config(fastcgi=_as_list(fastcgi), http=_as_list(http), **options).validate()
    setup_logging(config.log_level)
    run(app, config)


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def setup_logging(level: str) -> None:
    """Log to stderr, unless the embedding program configured logging itself."""
    logger = logging.getLogger("dumbwaiter")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
        )
        logger.addHandler(handler)
        logger.propagate = False


def run(app: WSGIApp, config: Config) -> None:
    """Serve ``app`` with a validated ``config``; see the module doc for modes."""
    if config.cgi:
        from .cgi import run_cgi

        _exit_with(run_cgi(app))
        return
    bound: list[tuple[Address, socket.socket]] = []
    listeners: list[Listener] = []
    # Until the event loop takes the signals over, a stop request must still
    # unwind through the finally below (which removes our socket files).
    previous = signal.signal(signal.SIGTERM, _exit_now)
    try:
        for protocol in PROTOCOLS:
            addresses: list[str] = getattr(config, protocol)
            for text in addresses:
                address = parse_address(text)
                sock = bind(address, config.backlog, config.socket_mode)
                if address.kind == "unix":
                    bound.append((address, sock))
                listeners.append(Listener(protocol, address, sock))
        if not listeners:
            inherited = inherited_listener()
            if inherited is not None:
                listeners.append(_web_server_listener(inherited, config))
            elif "GATEWAY_INTERFACE" in os.environ and "REQUEST_METHOD" in os.environ:
                from .cgi import run_cgi

                _exit_with(run_cgi(app))
                return
            else:
                address = parse_address(DEFAULT_HTTP)
                listeners.append(
                    Listener("http", address, bind(address, config.backlog, config.socket_mode))
                )
                print(f"dumbwaiter: serving on http://{DEFAULT_HTTP}/", file=sys.stderr)
        run_worker(app, config, listeners)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for listener in listeners:
            listener.sock.close()
        close_all(bound)


def _exit_with(code: int) -> None:
    if code:
        raise SystemExit(code)


def _exit_now(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _web_server_listener(sock: socket.socket, config: Config) -> Listener:
    """FastCGI on the socket a web server handed us on fd 0."""
    allowed = config.fastcgi_web_server_addrs
    if allowed is None and sock.family in (socket.AF_INET, socket.AF_INET6):
        # FastCGI 1.0, section 3.2: a comma-separated list of web server IPs.
        listed = os.environ.get("FCGI_WEB_SERVER_ADDRS", "")
        allowed = [a.strip() for a in listed.split(",") if a.strip()] or None
    address = Address("fd:0", "fd", fd=0)
    return Listener(
        "fastcgi", address, sock, allowed=frozenset(allowed) if allowed is not None else None
    )
