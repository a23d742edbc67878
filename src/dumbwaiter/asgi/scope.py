"""A request's CGI variables, completed as for WSGI (front-server quirks,
forwarded headers, HTTPS), as an ASGI HTTP ``scope``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

__all__ = ["SPEC", "WEBSOCKET_SPEC", "http_scope", "websocket_scope"]

#: What ``scope["asgi"]`` says: ASGI 3, and the newest HTTP spec version
#: whose behaviour is implemented (2.4: ``send()`` after the client left
#: raises an ``OSError``).
SPEC = {"version": "3.0", "spec_version": "2.4"}
#: ... and of the WebSocket spec (2.5: the close reason both ways).
WEBSOCKET_SPEC = {"version": "3.0", "spec_version": "2.5"}

#: CGI variables that are request headers without the ``HTTP_`` prefix.
BARE_HEADERS = (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length"))
#: What some fronts (lighttpd, nginx's uwsgi and scgi modules) also pass as
#: HTTP_ variables: the bare ones are the headers (one copy, not two).
FRONT_COPIES = frozenset(("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"))


def http_scope(environ: dict[str, Any], state: dict[str, Any] | None) -> dict[str, Any]:
    """The ``scope`` of a request whose environ is complete (see
    :func:`~dumbwaiter.wsgi.environ.complete_environ`)."""
    root: str = environ.get("SCRIPT_NAME", "")
    full = text(root + environ.get("PATH_INFO", ""))
    uri: str = environ.get("REQUEST_URI", "")
    raw = uri.partition("?")[0].encode("latin-1") if uri else quote(full).encode("ascii")
    protocol: str = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    version = protocol.partition("/")[2] or "1.1"
    headers = [
        (key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str) and key not in FRONT_COPIES
    ]
    for key, name in BARE_HEADERS:
        value = environ.get(key)
        if value:
            headers.append((name, value.encode("latin-1")))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": SPEC,
        "http_version": "2" if version.startswith("2") else version,
        "method": environ.get("REQUEST_METHOD", "GET"),
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": full,
        "raw_path": raw,
        "root_path": text(root),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "headers": headers,
        "client": address(environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")),
        "server": address(environ.get("SERVER_NAME"), environ.get("SERVER_PORT")),
        "extensions": {"http.response.pathsend": {}},
    }
    if state is not None:
        scope["state"] = dict(state)
    return scope


def websocket_scope(environ: dict[str, Any], state: dict[str, Any] | None) -> dict[str, Any]:
    """The ``scope`` of a WebSocket handshake whose environ is complete."""
    scope = http_scope(environ, state)
    del scope["method"]
    scope["type"] = "websocket"
    scope["asgi"] = WEBSOCKET_SPEC
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    offered = environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL", "").split(",")
    scope["subprotocols"] = [name.strip() for name in offered if name.strip()]
    scope["extensions"] = {"websocket.http.response": {}}
    return scope


def text(cgi: str) -> str:
    """A CGI path (its bytes as latin-1) as the UTF-8 text ASGI wants."""
    return cgi.encode("latin-1").decode("utf-8", "replace")


def address(host: str | None, port: str | None) -> tuple[str, int] | None:
    if not host:
        return None
    return host, int(port) if port and port.isdigit() else 0
