"""The one request model every protocol produces.

A :class:`Request` is the CGI/1.1 meta-variables the protocol parsed (a dict of
str) plus the body.  The thread that receives the request (the event loop's,
or an application thread serving its connection directly) writes the body
into a :class:`BodyBuffer` (memory up to a threshold, then an anonymous
temporary file) until :meth:`Request.finish`; after that the application
thread reads it through an :class:`InputStream`, which is ``wsgi.input``.

The one thing another thread may do to a request it does not own is
:meth:`Request.abort_input` (FastCGI ``FCGI_ABORT_REQUEST``, a client gone,
``--timeout``), which makes further reads see EOF.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator
from typing import IO, Final, Protocol

from .protocols import Chunk, Role

__all__ = [
    "EMPTY_INPUT",
    "NO_BODY",
    "BodyBuffer",
    "ChunkReader",
    "InputStream",
    "Request",
]

log = logging.getLogger("dumbwaiter")


class Reader(Protocol):
    """What :class:`InputStream` reads from: a binary file, or the chunks."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class ChunkReader:
    """Reads a body kept as the chunks it arrived in.

    ``read`` copies each byte once, out of the views the protocol kept, instead
    of joining the body first and then slicing the join.  ``readline`` (rare
    on bodies: multipart parsers read blocks) joins what is left once and
    reads on from that.
    """

    __slots__ = ("_chunks", "_index", "_joined", "_offset")

    def __init__(self, chunks: list[Chunk]) -> None:
        self._chunks = chunks
        self._index = 0  # the chunk being read
        self._offset = 0  # and where in it
        self._joined: io.BytesIO | None = None

    def read(self, size: int = -1, /) -> bytes:
        if self._joined is not None:
            return self._joined.read(size)
        chunks = self._chunks
        index = self._index
        offset = self._offset
        pieces: list[Chunk] = []
        while index < len(chunks) and size != 0:
            chunk = chunks[index]
            left = len(chunk) - offset
            if 0 < size < left:
                pieces.append(memoryview(chunk)[offset : offset + size])
                offset += size
                break
            pieces.append(memoryview(chunk)[offset:] if offset else chunk)
            size -= left
            index += 1
            offset = 0
        self._index = index
        self._offset = offset
        if len(pieces) == 1 and type(pieces[0]) is bytes:
            return pieces[0]
        return b"".join(pieces)

    def readline(self, size: int = -1, /) -> bytes:
        if self._joined is None:
            self._joined = io.BytesIO(self.read())
            self._chunks = []
        return self._joined.readline(size)

    def close(self) -> None:
        self._chunks = []
        self._joined = None


class InputStream:
    """``wsgi.input``: a bounded reader with EOF at the body's length.

    Supports ``read()``, ``read(n)``, ``readline()``, ``readline(n)``,
    ``readlines(hint)`` and iteration, as PEP 3333 asks.
    """

    __slots__ = ("_aborted", "_file", "_remaining")

    def __init__(self, file: Reader, length: int) -> None:
        self._file = file
        self._remaining = length
        self._aborted = False

    def read(self, size: int | None = -1) -> bytes:
        if self._aborted or self._remaining <= 0:
            return b""
        if size is None or size < 0 or size > self._remaining:
            size = self._remaining
        data = self._file.read(size)
        self._remaining -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self._aborted or self._remaining <= 0:
            return b""
        if size is None or size < 0 or size > self._remaining:
            size = self._remaining
        line = self._file.readline(size)
        self._remaining -= len(line)
        return line

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def abort(self) -> None:
        """Make every further read return ``b""`` (called from the loop)."""
        self._aborted = True

    def close(self) -> None:
        self._aborted = True
        self._file.close()


EMPTY_INPUT = InputStream(io.BytesIO(b""), 0)


class BodyBuffer:
    """Collects one request body; spools past ``threshold`` bytes.

    The temporary file is anonymous (unlinked at creation, mode 0600), so it
    disappears with the last file descriptor, whatever happens.
    """

    __slots__ = ("_chunks", "_file", "_spool_dir", "_threshold", "size")

    def __init__(self, threshold: int, spool_dir: str | None = None) -> None:
        self._chunks: list[Chunk] = []
        self._file: IO[bytes] | None = None
        self._threshold = threshold
        self._spool_dir = spool_dir
        self.size = 0

    def write(self, data: Chunk) -> None:
        self.size += len(data)
        if self._file is not None:
            self._file.write(data)
        elif self.size > self._threshold:
            # Owned by this buffer until finish() hands it to the InputStream.
            self._file = tempfile.TemporaryFile(dir=self._spool_dir)  # noqa: SIM115
            self._file.writelines(self._chunks)
            self._file.write(data)
            self._chunks = []
        else:
            self._chunks.append(data)

    def finish(self) -> InputStream:
        """End of body: the reader the application gets."""
        if self._file is not None:
            self._file.seek(0)
            return InputStream(self._file, self.size)
        if not self._chunks:
            return EMPTY_INPUT if self.size == 0 else InputStream(io.BytesIO(b""), 0)
        chunks = self._chunks
        self._chunks = []
        if len(chunks) == 1 and type(chunks[0]) is bytes:
            return InputStream(io.BytesIO(chunks[0]), self.size)
        return InputStream(ChunkReader(chunks), self.size)

    @property
    def in_memory(self) -> int:
        """Bytes held in memory (0 once spooled)."""
        return 0 if self._file is not None else self.size

    def discard(self) -> None:
        self._chunks = []
        if self._file is not None:
            self._file.close()
            self._file = None


#: The body of a request that has none (yet): empty, and never written to
#: (:meth:`Request.add_body` puts a buffer of its own in its place).
NO_BODY: Final = BodyBuffer(0)


class Request:
    """One request as the gateway sees it, whatever the wire protocol."""

    __slots__ = (
        "arrived",
        "body",
        "environ",
        "filter_data",
        "filter_input",
        "held",
        "input",
        "length",
        "role",
        "stream_id",
        "threshold",
    )

    def __init__(self, stream_id: int, environ: dict[str, str], role: Role, threshold: int) -> None:
        self.stream_id = stream_id
        #: CGI/1.1 meta-variables exactly as the protocol produced them
        #: (the gateway completes them into its environ, in place).
        self.environ = environ
        self.role = role
        #: The body as it came: NO_BODY until a piece does (most requests
        #: have none), then a buffer spooling past ``threshold`` bytes.
        self.body = NO_BODY
        self.threshold = threshold
        #: The FastCGI FILTER role's FCGI_DATA stream, when there is one.
        self.filter_data: BodyBuffer | None = BodyBuffer(threshold) if role is Role.FILTER else None
        self.input: InputStream = EMPTY_INPUT
        self.filter_input: InputStream | None = None
        #: The body's length, once it is known whole (:meth:`finish`).
        self.length = 0
        #: Body bytes in memory counted against --read-ahead-bytes while a
        #: thread owes this request its answer (set and cleared by the loop).
        self.held = 0
        #: When its head was complete (time.monotonic(): deadlines, durations).
        self.arrived = 0.0

    def add_body(self, data: Chunk) -> None:
        """A piece of the body, as it arrived."""
        body = self.body
        if body is NO_BODY:
            body = self.body = BodyBuffer(self.threshold)
        body.write(data)

    def finish(self) -> None:
        """Every input stream ended: turn the buffers into readers."""
        body = self.body
        if body is not NO_BODY:  # (else: no body, EMPTY_INPUT already)
            self.length = body.size
            self.input = body.finish()
        if self.filter_data is not None:
            self.filter_input = self.filter_data.finish()

    def abort_input(self) -> None:
        """Make the app's further reads see EOF (the client is gone)."""
        self.input.abort()
        if self.filter_input is not None:
            self.filter_input.abort()

    def discard(self) -> None:
        """Drop the buffers (the request will never run)."""
        if self.body is not NO_BODY:
            self.body.discard()
        if self.filter_data is not None:
            self.filter_data.discard()
