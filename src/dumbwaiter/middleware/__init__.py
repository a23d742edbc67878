"""WSGI middleware that works under any server: :class:`Compress`."""

from __future__ import annotations

from .compress import Compress, available_encodings, negotiate
from .mediatypes import DEFAULT_TYPES, MediaTypes

__all__ = ["DEFAULT_TYPES", "Compress", "MediaTypes", "available_encodings", "negotiate"]
