"""Response heads shared by the gateway protocols.

FastCGI, SCGI and CGI answer with a CGI response head (``Status:`` line, the
application's headers, a blank line; RFC 3875 section 6); the uwsgi protocol
answers with an HTTP/1.1 status line instead, as uWSGI does.  Hop-by-hop
headers from the application are dropped: the front server frames the
response to its client itself.
"""

from __future__ import annotations

__all__ = ["HOP_BY_HOP", "cgi_head", "http_head"]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    }
)


def _fields(headers: list[tuple[str, str]]) -> list[bytes]:
    lines: list[bytes] = []
    for name, value in headers:
        if name.lower() in HOP_BY_HOP:
            continue
        lines += (name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n")
    return lines


def cgi_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    """``Status: 200 OK`` + headers + blank line, latin-1."""
    return b"".join([b"Status: ", status.encode("latin-1"), b"\r\n", *_fields(headers), b"\r\n"])


def http_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    """``HTTP/1.1 200 OK`` + headers + blank line, latin-1."""
    return b"".join([b"HTTP/1.1 ", status.encode("latin-1"), b"\r\n", *_fields(headers), b"\r\n"])
