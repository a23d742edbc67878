"""Files served from the event loop on HTTP listeners (``--static URL=DIR``):
local use without a front server.

In production the front server should serve them (``dumbwaiter config
FRONT --static URL=DIR`` prints its block); this is for the development
server and a container without one.  A request under a mapped URL never
reaches a thread or the app: the loop answers it, with ``ETag`` and
``Last-Modified`` (and ``304`` for a conditional request that matches),
a single byte ``Range`` (``206``, or ``416``), ``HEAD``, and ``404`` for
anything that is not a regular file inside the folder: ``..`` segments, a
NUL, and a symbolic link that leads out of the folder are refused.  The body
goes out with the loop's ``sendfile`` where the loop and the wire allow
(asyncio's loop, an HTTP body of known length), else in chunks that wait
for the client, as every response does (``--write-buffer``).
"""

from __future__ import annotations

import asyncio
import email.utils
import mimetypes
import os
import stat
from typing import IO, Protocol

from ..config import static_map
from ..request import Request
from .exchange import ExchangeBase
from .session import Session

__all__ = ["Conn", "StaticExchange", "StaticFiles", "Upgraded", "send"]

#: The chunk read from a file when sendfile cannot be used.
CHUNK = 256 * 1024


class Upgraded(Protocol):
    """What a connection's bytes and events go to once it is a WebSocket."""

    def receive_data(self, data: bytes) -> None: ...

    def eof(self) -> None:
        """The peer half-closed (the connection then closes)."""

    def lost(self) -> None: ...

    def going_away(self) -> None:
        """The server is stopping gracefully."""


class Conn(Protocol):
    """What serving a file, or an ASGI request, needs of its connection (a
    ``Connection``); a WebSocket writes to it directly."""

    loop: asyncio.AbstractEventLoop
    session: Session
    transport: asyncio.Transport | None
    upgraded: Upgraded | None

    @property
    def write_paused(self) -> bool:
        """Whether a writer must await :meth:`drained` now."""

    @property
    def gone(self) -> bool:
        """Whether what is written now would be dropped."""

    async def drained(self) -> None: ...

    def write(self, data: bytes) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


class StaticExchange(ExchangeBase):
    """A request the loop answers from a file (no application runs it)."""

    __slots__ = ()


class StaticFiles:
    """The ``--static`` mappings of one worker."""

    def __init__(self, maps: list[str]) -> None:
        #: (URL prefix, the folder's real path), from ``URL=DIR``.
        self.maps = [static_map(text) for text in maps]

    def find(self, request: Request) -> tuple[str, str] | None:
        """The mapped file ``request`` asks for (maybe not there, or
        refused: :func:`answer` says) and its folder, or None when no
        mapping covers it."""
        environ = request.environ
        path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        for url, folder in self.maps:
            if path.startswith(url):
                return os.path.join(folder, path[len(url) :]), folder
        return None

    async def serve(self, conn: Conn, exchange: StaticExchange, found: tuple[str, str]) -> None:
        """Answer ``exchange`` on the loop (the session reports it)."""
        session = conn.session
        environ = exchange.request.environ
        for key in ("REMOTE_ADDR", "REMOTE_PORT"):  # (for the access log)
            if key in exchange.peer:
                environ.setdefault(key, exchange.peer[key])
        head = environ.get("REQUEST_METHOD") == "HEAD"
        status, headers, file, offset, count = answer(environ, *found)
        if file is None:
            quiet = head or status.startswith("304")
            session.send_head(exchange, status, headers, b"" if quiet else status.encode(), True)
            return
        try:
            if head or not count:
                session.send_head(exchange, status, headers, b"", True)
                return
            session.send_head(exchange, status, headers, b"", False)
            if await send(conn, exchange, file, offset, count):
                session.send_end(exchange)
        finally:
            file.close()


Answer = tuple[str, list[tuple[str, str]], IO[bytes] | None, int, int]


def answer(environ: dict[str, str], path: str, folder: str) -> Answer:
    """(status, headers, the open file or None, offset, count) for a GET or
    HEAD of ``path`` under ``folder``."""
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return "405 Method Not Allowed", [*TEXT, ("Allow", "GET, HEAD")], None, 0, 0
    try:
        name = path.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return NOT_FOUND
    parts = name[len(folder) :].split("/")
    if "\x00" in name or ".." in parts:
        return NOT_FOUND
    real = os.path.realpath(name)
    if real != folder and not real.startswith(folder + os.sep):
        return NOT_FOUND  # a symbolic link out of the folder
    try:
        file = open(real, "rb")  # noqa: SIM115 - closed by serve()
    except OSError:
        return NOT_FOUND
    info = os.fstat(file.fileno())
    if not stat.S_ISREG(info.st_mode):
        file.close()
        return NOT_FOUND
    size = info.st_size
    etag = f'"{info.st_mtime_ns:x}-{size:x}"'
    modified = email.utils.formatdate(info.st_mtime, usegmt=True)
    kind = mimetypes.guess_type(real)[0] or "application/octet-stream"
    headers = [("Content-Type", kind), ("ETag", etag), ("Last-Modified", modified)]
    if not_modified(environ, etag, int(info.st_mtime)):
        file.close()
        return "304 Not Modified", headers, None, 0, 0
    headers.append(("Accept-Ranges", "bytes"))
    ranged = byte_range(environ, etag, modified, size)
    if ranged is None:
        return "200 OK", [*headers, ("Content-Length", str(size))], file, 0, size
    if ranged[0] >= size:
        file.close()
        return (
            "416 Range Not Satisfiable",
            [*TEXT, ("Content-Range", f"bytes */{size}")],
            None,
            0,
            0,
        )
    first, last = ranged
    headers += [
        ("Content-Range", f"bytes {first}-{last}/{size}"),
        ("Content-Length", str(last - first + 1)),
    ]
    return "206 Partial Content", headers, file, first, last - first + 1


TEXT = [("Content-Type", "text/plain; charset=utf-8")]
NOT_FOUND: Answer = ("404 Not Found", TEXT, None, 0, 0)


def not_modified(environ: dict[str, str], etag: str, mtime: int) -> bool:
    """Whether the client's copy is current (RFC 9110 13.1.2, 13.1.3)."""
    match = environ.get("HTTP_IF_NONE_MATCH")
    if match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in match.split(",")]
        return "*" in tags or etag in tags
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if since:
        try:
            return mtime <= int(email.utils.parsedate_to_datetime(since).timestamp())
        except (TypeError, ValueError):
            return False
    return False


def byte_range(
    environ: dict[str, str], etag: str, modified: str, size: int
) -> tuple[int, int] | None:
    """The one byte range asked for, as (first, last), clipped to ``size``;
    None for the whole file (no Range, several ranges, or an If-Range that
    does not match).  A range that starts past the end comes back as is."""
    text = environ.get("HTTP_RANGE", "")
    if_range = environ.get("HTTP_IF_RANGE")
    if (
        not text.startswith("bytes=")
        or "," in text
        or (if_range and if_range not in (etag, modified))
    ):
        return None
    first, dash, last = text[6:].strip().partition("-")
    try:
        if not dash:
            return None
        if not first:  # the last N bytes
            count = int(last)
            return (max(0, size - count), size - 1) if count else (size, size)
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start < 0 or (end < start and start < size):
        return None
    return start, end


async def send(
    conn: Conn, exchange: ExchangeBase, file: IO[bytes], offset: int, count: int
) -> bool:
    """The file's bytes: the loop's sendfile when it can, else chunks; False
    when the response was broken off instead (the file shrank)."""
    session = conn.session
    if conn.transport is not None and session.raw_body_ok(exchange):
        try:
            await conn.loop.sendfile(conn.transport, file, offset, count)
            exchange.sent += count
            return True
        except NotImplementedError:  # uvloop: chunks
            pass
        except OSError:
            exchange.cancel()
            return True
    file.seek(offset)
    while count > 0 and not exchange.cancelled and conn.transport is not None:
        chunk = file.read(min(CHUNK, count))
        if not chunk:  # the file shrank: the response cannot be completed
            session.send_abort(exchange)
            return False
        count -= len(chunk)
        session.send_body(exchange, chunk)
        await conn.drained()
    return True
