"""Response compression as plain WSGI middleware: :class:`Compress`.

Theory of operation.  ``Compress(app)`` negotiates one content coding per
request from ``Accept-Encoding`` (RFC 9110 §12.5.3) and decides per response,
from its status and headers, whether the response is *compressible*
(:meth:`Compress.compressible`).  A compressible response gets ``Vary:
Accept-Encoding`` (§12.5.5) whatever the client accepts, since its
representation depends on that header.  It is compressed when the client
accepts a coding and the request has no ``Range``:

* the app's ``start_response`` is held back (PEP 3333 lets middleware defer
  it until the first body bytes) so that a whole body (a list or tuple) can
  be measured against ``min_size`` and sent with its compressed
  Content-Length, in one piece as before;
* otherwise every chunk the app yields or writes is compressed and flushed at
  once (zlib ``Z_SYNC_FLUSH``, brotli ``flush()``, zstd ``FLUSH_BLOCK``): a
  streamed response still streams, and its Content-Length goes;
* an empty chunk yields ``b""`` (PEP 3333: middleware yields once for every
  value the app yields), and nothing reaches the wire.

A response that is not compressed is passed through untouched: its
``start_response`` goes upstream at once and its iterable is returned as the
app made it (so ``wsgi.file_wrapper`` keeps its sendfile).  A compressed
``wsgi.file_wrapper`` response is iterated, like any other.

Exceptions from the app propagate unchanged, and the iterable handed to the
server always closes the app's iterable.  Instances are shared by all
threads; the state of one response lives in a :class:`_Response`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..typing import ExcInfo, StartResponse, WSGIApp
from .codings import ENCODERS, Encoder, available_encodings, negotiate
from .mediatypes import DEFAULT_TYPES, MediaTypes

__all__ = ["DEFAULT_TYPES", "Compress", "available_encodings", "negotiate"]

Headers = list[tuple[str, str]]
Write = Callable[[bytes], None]


# -- the middleware --------------------------------------------------------------------------
class Compress:
    """Compress the responses of ``app`` that are worth it.

    ``min_size``: bodies known to be shorter (by Content-Length, or a list
    or tuple body) are sent as they are.  ``types``: the media types to
    compress (see :data:`DEFAULT_TYPES` for the pattern forms; ``"*"`` is
    every type).  ``level``: 1 (fastest) to 9 (smallest), given to each
    encoder as it is (zlib level, brotli quality, zstd level).
    ``encodings``: the codings to offer, best first; None offers every
    installed one (:func:`available_encodings`).  ``types`` and
    ``encodings`` may also be comma-separated strings (``"text/*,
    application/json"``), as a command line gives them.

    Raises ValueError for a bad level, a bad type pattern, or an encoding
    that is unknown or not installed.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        min_size: int = 1024,
        types: Iterable[str] = DEFAULT_TYPES,
        level: int = 6,
        encodings: Iterable[str] | None = None,
    ) -> None:
        if not 1 <= level <= 9:
            raise ValueError(f"compression level {level}: 1 (fastest) to 9 (smallest)")
        if min_size < 0:
            raise ValueError(f"min_size {min_size}: must be 0 or more")
        if isinstance(encodings, str):
            encodings = [name for name in encodings.split(",") if name.strip()]
        offered = tuple(ENCODERS) if encodings is None else tuple(e.strip() for e in encodings)
        for name in offered:
            if name not in ("br", "zstd", "gzip"):
                raise ValueError(f"unknown encoding {name!r}: br, zstd or gzip")
            if name not in ENCODERS:
                package = "brotli" if name == "br" else "zstandard"
                raise ValueError(f"{name} needs the {package} package: pip install {package}")
        self.app = app
        self.min_size = min_size
        self.level = level
        self.encodings = offered
        self.types = MediaTypes(types)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "HEAD":
            # As nginx's gzip module: a HEAD response is left as the app
            # made it, with no Vary and its identity Content-Length.
            return self.app(environ, start_response)
        coding = None
        if "HTTP_RANGE" not in environ:  # a range is of the identity bytes
            coding = negotiate(environ.get("HTTP_ACCEPT_ENCODING"), self.encodings)
        response = _Response(self, start_response, coding)
        result = self.app(environ, response.start_response)
        return response.body(result)

    def compressible(self, status: str, headers: Headers) -> bool:
        """Whether a response with this status and these headers may be
        compressed (and so gets ``Vary: Accept-Encoding``).

        Not: status 1xx, 204, 206 or 304; a Content-Encoding or Content-Range
        already there; ``Cache-Control: no-transform`` (RFC 9111 §5.2.2.6);
        a Content-Length under ``min_size``; no Content-Type, or one not in
        ``types``."""
        if status[0] == "1" or status[:3] in ("204", "206", "304"):
            return False
        media = None
        for name, value in headers:
            lower = name.lower()
            if lower == "content-type":
                media = value
            elif lower == "content-length":
                value = value.strip()
                if value.isdigit() and int(value) < self.min_size:
                    return False
            elif (
                (lower == "content-encoding" and value.strip())
                or lower == "content-range"
                or (lower == "cache-control" and _has_token(value, "no-transform"))
            ):
                return False
        return media is not None and self.compressible_type(media)

    def compressible_type(self, content_type: str) -> bool:
        """Whether ``content_type`` (parameters allowed) matches ``types``."""
        return self.types.match(content_type)


def _has_token(value: str, token: str) -> bool:
    """Whether a comma-separated header value has ``token`` (before any ``=``)."""
    return any(part.partition("=")[0].strip().lower() == token for part in value.split(","))


def with_vary(headers: Headers) -> Headers:
    """``headers`` (a copy) with Accept-Encoding in its Vary, merged into the
    first Vary field; unchanged when a Vary has it already, or ``*``."""
    first = -1
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            tokens = {token.strip().lower() for token in value.split(",")}
            if "*" in tokens or "accept-encoding" in tokens:
                return list(headers)
            if first < 0:
                first = index
    if first < 0:
        return [*headers, ("Vary", "Accept-Encoding")]
    result = list(headers)
    name, value = result[first]
    result[first] = (name, f"{value}, Accept-Encoding" if value.strip() else "Accept-Encoding")
    return result


_DROPPED = frozenset(("content-length", "accept-ranges", "etag"))


def encoded_headers(headers: Headers, coding: str, length: int | None) -> Headers:
    """The headers of the compressed variant: Content-Encoding, Vary, a
    Content-Length only when ``length`` is known, no Accept-Ranges (ranges
    of the compressed bytes are not served), and the ETag made weak (RFC
    9110 §8.8.3.3: the variant differs in its bytes), or dropped when it is
    malformed, as nginx does."""
    result: Headers = []
    for name, value in with_vary(headers):
        lower = name.lower()
        if lower not in _DROPPED:
            result.append((name, value))
        elif lower == "etag":
            value = value.strip()
            if value.startswith("W/"):
                result.append((name, value))
            elif value.startswith('"'):
                result.append((name, "W/" + value))
    result.append(("Content-Encoding", coding))
    if length is not None:
        result.append(("Content-Length", str(length)))
    return result


# Where a _Response is: no start_response yet; deferred (will compress);
# passed upstream as it is; compressing (headers upstream).
_NONE, _HELD, _PASS, _ENCODE = range(4)


class _Response:
    """One response through :class:`Compress`: the ``start_response`` and
    ``write`` the app gets, and the decision between pass and encode."""

    __slots__ = (
        "coding",
        "encoder",
        "headers",
        "mode",
        "owner",
        "status",
        "upstream",
        "upstream_write",
    )

    def __init__(self, owner: Compress, upstream: StartResponse, coding: str | None) -> None:
        self.owner = owner
        self.upstream = upstream
        self.coding = coding  # what the client accepts, None: identity only
        self.mode = _NONE
        self.status: str | None = None
        self.headers: Headers = []
        self.encoder: Encoder | None = None
        self.upstream_write: Write | None = None

    def start_response(
        self, status: str, headers: Headers, exc_info: ExcInfo | None = None
    ) -> Write:
        if exc_info is not None:
            if self.mode == _ENCODE:  # our head went out: PEP 3333 says re-raise
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.mode != _NONE:
            raise AssertionError("start_response() called a second time without exc_info")
        compressible = self.owner.compressible(status, headers)
        if compressible and self.coding is not None and self.mode != _PASS:
            self.status, self.headers = status, list(headers)
            self.mode = _HELD
            return self.write
        if compressible:
            headers = with_vary(headers)
        self.mode = _PASS
        self.upstream_write = self.upstream(status, headers, exc_info)
        return self.upstream_write

    def write(self, data: bytes) -> None:
        """The app's ``write()`` while held or encoding."""
        if self.mode == _NONE:
            raise AssertionError("write() before start_response()")
        out = self.encode(data)
        if out:
            assert self.upstream_write is not None
            self.upstream_write(out)

    def begin(self) -> None:
        """Send the held head upstream, compressed, and make the encoder."""
        assert self.status is not None and self.coding is not None
        headers = encoded_headers(self.headers, self.coding, None)
        self.upstream_write = self.upstream(self.status, headers)
        self.encoder = ENCODERS[self.coding](self.owner.level)
        self.mode = _ENCODE

    def encode(self, data: bytes) -> bytes:
        """What to send upstream for one chunk of the app's body."""
        if type(data) is not bytes:
            raise TypeError(f"the body must be bytes, not {type(data).__name__}")
        if self.mode == _PASS:
            return data
        if self.mode == _HELD:
            # Even for b"": the server may want the head before any value.
            self.begin()
        elif self.mode == _NONE:
            if not data:
                return data
            raise AssertionError("the application sent body bytes before start_response()")
        if not data:
            return data
        assert self.encoder is not None
        return self.encoder.chunk(data)

    def end(self) -> bytes:
        """The last bytes, once the app's iterable is exhausted."""
        if self.mode == _ENCODE:
            assert self.encoder is not None
            return self.encoder.finish()
        if self.mode == _HELD:  # no body at all: nothing to compress
            self.pass_held()
        return b""

    def pass_held(self) -> None:
        assert self.status is not None
        self.mode = _PASS
        self.upstream_write = self.upstream(self.status, with_vary(self.headers))

    def body(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """The iterable to give the server for the app's ``result``."""
        if self.mode == _PASS:
            return result
        if self.mode == _HELD and isinstance(result, (list, tuple)):
            try:
                return self.whole(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return _Body(self, result)

    def whole(self, parts: list[bytes] | tuple[bytes, ...]) -> list[bytes]:
        """A list or tuple body: compressed in one piece, with its length;
        sent as it is when under ``min_size`` or when it would not shrink."""
        for part in parts:
            if type(part) is not bytes:
                raise TypeError(f"the body must be bytes, not {type(part).__name__}")
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if data and len(data) >= self.owner.min_size:
            assert self.status is not None and self.coding is not None
            packed = ENCODERS[self.coding](self.owner.level).finish(data)
            if len(packed) < len(data):
                self.mode = _ENCODE
                self.upstream(self.status, encoded_headers(self.headers, self.coding, len(packed)))
                return [packed]
        self.pass_held()
        return [data]


class _Body:
    """The iterable the server gets when the body may need encoding: one
    value for each value of the app's iterable, then the encoder's tail;
    ``close()`` closes the app's iterable (also when never iterated)."""

    __slots__ = ("_chunks", "_done", "_response", "_result")

    def __init__(self, response: _Response, result: Iterable[bytes]) -> None:
        self._response = response
        self._result = result
        self._chunks: Iterator[bytes] | None = None
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        if self._chunks is None:
            self._chunks = iter(self._result)
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._done = True
            tail = self._response.end()
            if tail:
                return tail
            raise
        return self._response.encode(chunk)

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            close()
