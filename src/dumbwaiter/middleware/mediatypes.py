"""Media type patterns, as ``--gzip-types`` and :class:`~.compress.Compress`
take them: a leaf, so that the settings table can check a pattern list
without importing the middleware."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["DEFAULT_TYPES", "MediaTypes"]

#: Media types compressed by default: ``type/*`` matches any subtype,
#: ``*/*+suffix`` any structured syntax suffix (RFC 6838 §4.2.8).
DEFAULT_TYPES: tuple[str, ...] = (
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "image/svg+xml",
    "*/*+json",
    "*/*+xml",
)


class MediaTypes:
    """A set of media type patterns: ``type/sub``, ``type/*``, ``*/*+suffix``
    (RFC 6838 section 4.2.8), or ``*`` for every type.  ``patterns`` may be
    one comma-separated string, as a command line gives them.

    Raises ValueError for a pattern of none of these forms.
    """

    def __init__(self, patterns: Iterable[str] | str = DEFAULT_TYPES) -> None:
        if isinstance(patterns, str):
            patterns = [pattern for pattern in patterns.split(",") if pattern.strip()]
        self._exact: set[str] = set()
        self._major: set[str] = set()
        self._suffix: set[str] = set()
        self._any = False
        for pattern in patterns:
            self._add(pattern.strip().lower())

    def _add(self, pattern: str) -> None:
        major, slash, minor = pattern.partition("/")
        if pattern in ("*", "*/*"):
            self._any = True
        elif major == "*" and minor.startswith("*+") and len(minor) > 2:
            self._suffix.add(minor[1:])
        elif slash and major and major != "*" and minor == "*":
            self._major.add(major)
        elif slash and major and minor and "*" not in pattern:
            self._exact.add(pattern)
        else:
            raise ValueError(f"bad media type pattern {pattern!r}: type/sub, type/*, */*+suffix")

    def match(self, content_type: str) -> bool:
        """Whether ``content_type`` (parameters allowed) matches a pattern."""
        media = content_type.partition(";")[0].strip().lower()
        if self._any or media in self._exact:
            return True
        major, _, minor = media.partition("/")
        if major in self._major:
            return True
        plus = minor.rfind("+")
        return plus > 0 and minor[plus:] in self._suffix
