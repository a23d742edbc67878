"""An HTTP/1.1 request head as a CGI environ, derived once (RFC 3875 section
4.1, PEP 3333), and what its framing fields say of a body (RFC 9112 section 6).

llhttp has checked the syntax; the functions here enforce what it leaves to
us -- the size of the field section, Host (RFC 9112 section 3.2), the body
limit, the transfer codings we implement -- and raise
:class:`RemoteProtocolError` with the status to answer.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_to_bytes

from .errors import RemoteProtocolError

__all__ = ["has_body", "request_environ", "wants_websocket"]

# Searched for as ints: ``int in bytes`` is several times faster than ``bytes in bytes``.
_HASH: Final = ord("#")
_PERCENT: Final = ord("%")


def _cgi_name(name: bytes) -> str | None:
    """The environ key of request field ``name``, or None to drop it.

    Names with ``_`` are dropped: ``X_Foo`` would otherwise arrive as the
    same ``HTTP_X_FOO`` as ``X-Foo`` and let a client spoof a header a front
    server sets.  ``Proxy`` is dropped too ("httpoxy": ``HTTP_PROXY`` is read
    as a proxy setting by some libraries).
    """
    if b"_" in name:
        return None
    key = name.decode("latin-1").upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key
    return None if key == "PROXY" else "HTTP_" + key


#: Environ keys of the field names seen, up to _CACHE_MAX of them.
_CGI_NAMES: Final[dict[bytes, str | None]] = {}
_CACHE_MAX: Final = 512

#: A Host value: host [":" port] (RFC 9112 section 3.2).  What is refused
#: is what would change a URL rebuilt from it (``/ ? # @ \\``), spaces and
#: controls, a port that is not digits: bytes past ASCII pass, as nginx
#: passes them, and so does h2o's ``[unix:/path]`` for a unix socket
#: backend.  Empty is valid; "," is left out: two Host lines joined (see
#: request_environ).
_HOST: Final = re.compile(
    r"(?:\[[^\x00-\x20\x7f\]\\?#@,]*\]|[^\x00-\x20\x7f/\\?#@\[\],:]*)(?::[0-9]*)?"
)
#: Host values found valid, up to _CACHE_MAX of them (a server hears few),
#: each at most _HOST_CACHED long (a name is at most 253).
_GOOD_HOSTS: Final[set[str]] = set()
_HOST_CACHED: Final = 260


def request_environ(
    fields: list[tuple[bytes, bytes]], url: bytes, method: str, protocol: str, max_bytes: int
) -> dict[str, str]:
    """The CGI environ of a request head: its ``fields`` (``HTTP_*``,
    ``CONTENT_TYPE``, ``CONTENT_LENGTH``), its target ``url`` (see
    ``_target``), ``REQUEST_METHOD``, ``SCRIPT_NAME`` (empty) and
    ``SERVER_PROTOCOL`` (``protocol``: ``HTTP/1.1`` or ``HTTP/1.0``).

    Raises :class:`RemoteProtocolError`: 431 when the field section is over
    ``max_bytes``; 400 for an HTTP/1.1 request without Host, for more than
    one Host or one not of its syntax (RFC 9112 section 3.2), for more than
    one Content-Type, and for the target ``*`` with another method than
    OPTIONS (section 3.2.4).
    """
    environ = _fields_environ(fields, max_bytes)
    if "HTTP_HOST" not in environ and protocol != "HTTP/1.0":
        raise RemoteProtocolError("HTTP/1.1 request without Host")
    if url[:1] == b"*" and (url != b"*" or method != "OPTIONS"):
        raise RemoteProtocolError("the target * is for OPTIONS only, alone")
    _target(url, environ)
    # (after _target: an absolute-form target's authority replaces Host)
    host = environ.get("HTTP_HOST")
    if host is not None and host not in _GOOD_HOSTS:
        if "," in host:
            raise RemoteProtocolError("more than one Host")
        if _HOST.fullmatch(host) is None:
            raise RemoteProtocolError("Host is not a host[:port]")
        if len(host) <= _HOST_CACHED and len(_GOOD_HOSTS) < _CACHE_MAX:
            _GOOD_HOSTS.add(host)
    environ["REQUEST_METHOD"] = method
    environ["SCRIPT_NAME"] = ""
    environ["SERVER_PROTOCOL"] = protocol
    return environ


def _fields_environ(fields: list[tuple[bytes, bytes]], max_bytes: int) -> dict[str, str]:
    """The header fields as CGI variables; their size checked (each counts
    as written canonically: name, ": ", value, CRLF)."""
    environ: dict[str, str] = {}
    size = 4 * len(fields)
    names = _CGI_NAMES
    for name, value in fields:
        size += len(name) + len(value)
        try:
            key = names[name]
        except KeyError:
            key = _cgi_name(name)
            if len(names) < _CACHE_MAX:
                names[name] = key
        if key is None:
            continue
        # llhttp strips leading whitespace only (RFC 9110 section 5.5: both go).
        text = value.rstrip(b" \t").decode("latin-1")
        if key in environ:  # RFC 9110 5.3; Cookie lines join with "; " (RFC 6265 5.4)
            if key == "CONTENT_TYPE":  # one value, never a list: which would the app take?
                raise RemoteProtocolError("more than one Content-Type")
            environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + text
        else:
            environ[key] = text
    if size > max_bytes:
        raise RemoteProtocolError("header section too large", 431)
    return environ


def _target(url: bytes, environ: dict[str, str]) -> None:
    """PATH_INFO (percent-decoded, as latin-1), QUERY_STRING, REQUEST_URI."""
    environ["REQUEST_URI"] = url.decode("latin-1")
    if url[:1] != b"/" and b"://" in url:
        # absolute-form: its authority replaces Host (RFC 9112 section 3.2.2)
        rest = url[url.index(b"://") + 3 :]
        cut = len(rest)
        for separator in (b"/", b"?", b"#"):
            found = rest.find(separator, 0, cut)
            if found >= 0:
                cut = found
        authority = rest[:cut].rpartition(b"@")[2]
        if authority:
            environ["HTTP_HOST"] = authority.decode("latin-1")
        url = rest[cut:]
        if url[:1] != b"/":
            url = b"/" + url
    if _HASH in url:
        url = url[: url.index(_HASH)]
    path, _, query = url.partition(b"?")
    environ["QUERY_STRING"] = query.decode("latin-1")
    if _PERCENT in path:
        path = unquote_to_bytes(path)
    environ["PATH_INFO"] = path.decode("latin-1")


def wants_websocket(environ: dict[str, str]) -> bool:
    """Whether a GET that asks to upgrade asks for a WebSocket (RFC 6455
    section 4.1: a GET with ``Upgrade: websocket``, ``Connection: Upgrade``,
    and HTTP/1.1: RFC 9110 section 7.8 has HTTP/1.0 ignore Upgrade)."""
    upgrade = environ.get("HTTP_UPGRADE")
    if upgrade is None:
        return False  # (every plain request: one lookup)
    if environ.get("SERVER_PROTOCOL") != "HTTP/1.1" or environ.get("REQUEST_METHOD") != "GET":
        return False
    upgrade = upgrade.lower()
    connection = environ.get("HTTP_CONNECTION", "").lower()
    return "websocket" in tokens(upgrade) and "upgrade" in tokens(connection)


def tokens(value: str) -> list[str]:
    return [token.strip() for token in value.split(",")]


def has_body(environ: dict[str, str], http10: bool, max_body: int) -> bool:
    """Whether the request has a body, by its Content-Length (RFC 9110
    section 8.6) or Transfer-Encoding (RFC 9112 sections 6.1 and 6.3: chunked,
    last, and only in HTTP/1.1).  Transfer-Encoding is taken out of
    ``environ``: the application gets the body de-chunked.

    Raises :class:`RemoteProtocolError`: 413 for a Content-Length over
    ``max_body``; 400 for a bad Transfer-Encoding; 501 for a coding before
    chunked.
    """
    body = False
    length = environ.get("CONTENT_LENGTH")
    if length is not None:  # llhttp checked the digits and refused duplicates
        # ... and their value, not their count: int() refuses more than
        # 4300 digits (sys.get_int_max_str_digits), and leading zeros
        # within the header limits are valid (RFC 9110 section 8.6).
        size = int(length.lstrip("0") or "0")
        if size > max_body:
            raise RemoteProtocolError("request body too large", 413)
        body = size > 0
    coding = environ.pop("HTTP_TRANSFER_ENCODING", None)
    if coding is not None:
        codings = [c.strip() for c in coding.lower().split(",")]
        if http10 or codings[-1] != "chunked":
            raise RemoteProtocolError("bad Transfer-Encoding")
        if len(codings) > 1:
            raise RemoteProtocolError("transfer coding not implemented", 501)
        body = True
    return body
