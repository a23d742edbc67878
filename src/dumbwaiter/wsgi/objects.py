"""What the WSGI gateway hands to applications as Python classes.

They live apart from :mod:`dumbwaiter.wsgi.gateway` so that the gateway can
be compiled (setup.py) while these stay ordinary classes that an application
may subclass (``ClientDisconnected`` is in :mod:`dumbwaiter.errors`, for the
same reason).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import IO

__all__ = ["ErrorStream", "FileWrapper"]

app_log = logging.getLogger("dumbwaiter.app")


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; the gateway sends it
    with sendfile instead when the protocol frames the body raw."""

    def __init__(self, filelike: IO[bytes], blksize: int = 64 * 1024) -> None:
        self.filelike = filelike
        self.blksize = blksize
        close = getattr(filelike, "close", None)
        if close is not None:
            self.close = close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.blksize):
            yield block


class ErrorStream:
    """``wsgi.errors``: each line written goes to the error log."""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                app_log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass
