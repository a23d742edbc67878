"""Where an application is mounted: a path split into SCRIPT_NAME and
PATH_INFO at a prefix (PEP 3333: the two together are the path), on a
segment boundary, so that ``/app`` covers ``/app/x`` and not ``/application``.
Used where a front names the mount (uwsgi's modifier1 30) and where it is
configured (``--script-name``)."""

from __future__ import annotations

__all__ = ["split_at"]


def split_at(prefix: str, path: str) -> tuple[str, str]:
    """``(SCRIPT_NAME, PATH_INFO)`` of ``path`` under the mount ``prefix``
    (no trailing slash): the prefix and the rest when the path is the
    prefix or below it; else ``""`` and the whole path (not under it)."""
    if prefix and path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] in ("", "/"):
        return prefix, path[len(prefix) :]
    return "", path
