"""The gateway response heads, now in :mod:`.heads` with the HTTP/1.1 one
(one hop-by-hop list for both); these names stay importable from here."""

from __future__ import annotations

from .heads import HOP_BY_HOP, cgi_head, http_head

__all__ = ["HOP_BY_HOP", "cgi_head", "http_head"]
