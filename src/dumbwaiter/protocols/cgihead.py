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


#: Only names of these lengths can be hop-by-hop: the others skip lower().
_HOP_LENGTHS = frozenset(len(name) for name in HOP_BY_HOP)


def _head(first: str, status: str, headers: list[tuple[str, str]]) -> bytes:
    # Built as text and encoded once: one encode per head, not two per field.
    lines = [first, status, "\r\n"]
    for name, value in headers:
        if len(name) in _HOP_LENGTHS and name.lower() in HOP_BY_HOP:
            continue
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def cgi_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    """``Status: 200 OK`` + headers + blank line, latin-1."""
    return _head("Status: ", status, headers)


def http_head(status: str, headers: list[tuple[str, str]]) -> bytes:
    """``HTTP/1.1 200 OK`` + headers + blank line, latin-1."""
    return _head("HTTP/1.1 ", status, headers)
