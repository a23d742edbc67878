"""Middleware that works under any server: :class:`Compress` (WSGI) and
:class:`CompressASGI` (ASGI)."""

from __future__ import annotations

from .compress import Compress, available_encodings, negotiate
from .compress_asgi import CompressASGI
from .mediatypes import DEFAULT_TYPES, MediaTypes

__all__ = [
    "DEFAULT_TYPES",
    "Compress",
    "CompressASGI",
    "MediaTypes",
    "available_encodings",
    "negotiate",
]
