"""dumbwaiter.middleware.Compress, driven by a tiny WSGI harness.

``call()`` builds an environ with ``wsgiref.util.setup_testing_defaults``,
records what reaches the server's ``start_response`` and ``write()``, pulls
the body one value at a time and always closes it, as a server does.  Apps
are wrapped in ``wsgiref.validate.validator`` on both sides of the
middleware, so PEP 3333 is checked for the app and for the middleware.
The brotli and zstd tests need the ``brotli`` and ``zstandard`` packages
(the ``compress`` extra).
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import brotli
import pytest
import zstandard

from dumbwaiter.middleware import (
    DEFAULT_TYPES,
    Compress,
    available_encodings,
    negotiate,
)
from fake_exchange import FakeStream, serve

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

TEXT = ("".join(f"line {n}: the quick brown fox jumps\n" for n in range(400))).encode()
HTML = [("Content-Type", "text/html; charset=utf-8")]
CODINGS = ("br", "zstd", "gzip")


def decode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return bytes(brotli.decompress(data))
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


class Decoder:
    """An incremental decoder: ``feed`` returns what the bytes so far give."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        if coding == "gzip":
            self.d: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "br":
            self.d = brotli.Decompressor()
        else:
            self.d = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data: bytes) -> bytes:
        if self.coding == "br":
            return bytes(self.d.process(data))
        return bytes(self.d.decompress(data))


@dataclass
class Result:
    """What the server saw of one response."""

    starts: list[tuple[str, list[tuple[str, str]], Any]] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)  # each value of the iterable
    written: list[bytes] = field(default_factory=list)  # each write() call

    @property
    def status(self) -> str:
        return self.starts[-1][0]

    @property
    def headers(self) -> list[tuple[str, str]]:
        return self.starts[-1][1]

    def header(self, name: str) -> str | None:
        found = [v for n, v in self.headers if n.lower() == name.lower()]
        assert len(found) <= 1, self.headers
        return found[0] if found else None

    @property
    def body(self) -> bytes:
        return b"".join(self.written) + b"".join(self.values)

    def decoded(self) -> bytes:
        coding = self.header("Content-Encoding")
        return self.body if coding is None else decode(coding, self.body)


def environ_for(method: str = "GET", **headers: str) -> dict[str, Any]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "QUERY_STRING": ""}
    setup_testing_defaults(environ)
    for name, value in headers.items():
        environ["HTTP_" + name.upper()] = value
    return environ


def call(
    app: App,
    method: str = "GET",
    *,
    validate: bool = True,
    each: Callable[[Result], None] | None = None,
    **headers: str,
) -> Result:
    """One request through ``app`` (already wrapped in Compress).  ``each``
    runs after every value the server pulls from the body."""
    result = Result()

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and result.values and any(result.values):
            raise exc_info[1].with_traceback(exc_info[2])
        result.starts.append((status, list(response_headers), exc_info))
        return result.written.append

    outer = validator(app) if validate else app
    body = outer(environ_for(method, **headers), start_response)
    try:
        for value in body:
            result.values.append(value)
            if each is not None:
                each(result)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return result


def text_app(
    body: bytes = TEXT,
    headers: list[tuple[str, str]] | None = None,
    status: str = "200 OK",
    *,
    whole: bool = True,
) -> App:
    """An app answering ``body``: a one-item list, or (``whole`` False) a
    validated iterator of one chunk (the validator's wrapper would hide the
    list)."""
    response_headers = HTML if headers is None else headers

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(status, list(response_headers))
        return [body] if whole else iter([body])

    return app if whole else validator(app)


# -- negotiation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, None),  # no header: no preference, so no coding
        ("", None),  # empty: no coding wanted
        ("gzip", "gzip"),
        ("GZip", "gzip"),
        ("x-gzip", "gzip"),
        ("deflate", None),
        ("gzip;q=0", None),
        ("gzip; q=0.000", None),
        ("gzip;Q=0.5", "gzip"),
        ("gzip ; q=1.0", "gzip"),
        ("*", "br"),
        ("*;q=0", None),
        ("*;q=0, gzip", "gzip"),
        ("*, br;q=0", "zstd"),
        ("identity", None),
        ("identity;q=0", None),
        ("gzip, identity;q=0", "gzip"),
        ("gzip;q=0.5, identity", None),  # identity preferred
        ("gzip;q=0.5, identity;q=0.5", "gzip"),  # a tie goes to the coding
        ("gzip;q=0.5", "gzip"),  # unlisted identity is the last choice
        ("gzip, deflate, br, zstd", "br"),  # server preference among equals
        ("gzip, zstd", "zstd"),
        ("br;q=0.5, gzip;q=0.8", "gzip"),  # q-values before preference
        ("br;q=0.9, zstd;q=0.9, gzip", "gzip"),
        ("gzip;q=1.5", None),  # malformed q: the element is ignored
        ("gzip;q=0.1234", None),
        ("gzip;q=abc, br", "br"),
        ("gzip, gzip;q=0", None),  # named twice: the lower value
        (" , ,gzip", "gzip"),
        ("gzip;level=9;q=0.2", "gzip"),
    ],
)
def test_negotiate(accept: str | None, expected: str | None) -> None:
    assert negotiate(accept, CODINGS) == expected


def test_negotiate_only_what_is_offered() -> None:
    assert negotiate("br, zstd", ("gzip",)) is None
    assert negotiate("*", ("gzip",)) == "gzip"
    assert negotiate("br;q=1, gzip;q=0.5", ("gzip", "br")) == "br"


def test_gzip_is_always_available() -> None:
    assert "gzip" in available_encodings()
    assert available_encodings()[-1] == "gzip"
    # CI installs the compress extra; these tests need it.
    assert available_encodings() == CODINGS


def test_encodings_argument() -> None:
    app = Compress(text_app(), encodings=["gzip"])
    result = call(app, accept_encoding="br, zstd;q=0.9, gzip;q=0.1")
    assert result.header("Content-Encoding") == "gzip"
    result = call(app, accept_encoding="br")
    assert result.header("Content-Encoding") is None
    assert result.header("Vary") == "Accept-Encoding"
    # The order given is the server's preference.
    app = Compress(text_app(), encodings=["gzip", "br"])
    assert call(app, accept_encoding="br, gzip").header("Content-Encoding") == "gzip"
    app = Compress(text_app(), encodings="zstd, gzip")
    assert call(app, accept_encoding="br, gzip, zstd").header("Content-Encoding") == "zstd"


@pytest.mark.parametrize(
    "kw",
    [
        {"level": 0},
        {"level": 10},
        {"min_size": -1},
        {"encodings": ["deflate"]},
        {"types": ["text"]},
        {"types": ["*/json"]},
        {"types": ["text/*+"]},
    ],
)
def test_bad_arguments(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Compress(text_app(), **kw)


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("whole", [True, False], ids=["list", "stream"])
def test_round_trip(coding: str, whole: bool) -> None:
    app = Compress(text_app(whole=whole))
    result = call(app, accept_encoding=coding)
    assert result.status == "200 OK"
    assert result.header("Content-Encoding") == coding
    assert result.header("Vary") == "Accept-Encoding"
    assert decode(coding, result.body) == TEXT
    assert len(result.body) < len(TEXT) // 4
    assert len(result.starts) == 1


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("level", [1, 9])
def test_levels(coding: str, level: int) -> None:
    result = call(Compress(text_app(), level=level), accept_encoding=coding)
    assert decode(coding, result.body) == TEXT


def test_many_parts_are_one_body() -> None:
    parts = [TEXT[i : i + 100] for i in range(0, len(TEXT), 100)]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return parts

    result = call(Compress(app), accept_encoding="gzip")
    assert len(result.values) == 1
    assert gzip.decompress(result.body) == TEXT


# -- headers --------------------------------------------------------------------------------------
def test_content_length_of_a_whole_body_is_recomputed() -> None:
    headers = [*HTML, ("Content-Length", str(len(TEXT)))]
    result = call(Compress(text_app(headers=headers)), accept_encoding="gzip")
    assert result.header("Content-Length") == str(len(result.body))
    assert result.values == [result.body]  # still one piece


def test_content_length_of_a_stream_is_removed() -> None:
    headers = [*HTML, ("Content-Length", str(len(TEXT))), ("Accept-Ranges", "bytes")]
    result = call(Compress(text_app(headers=headers, whole=False)), accept_encoding="gzip")
    assert result.header("Content-Encoding") == "gzip"
    assert result.header("Content-Length") is None
    assert result.header("Accept-Ranges") is None  # no ranges of the compressed bytes
    assert gzip.decompress(result.body) == TEXT


def test_identity_keeps_content_length() -> None:
    headers = [*HTML, ("Content-Length", str(len(TEXT)))]
    result = call(Compress(text_app(headers=headers, whole=False)))
    assert result.header("Content-Length") == str(len(TEXT))
    assert result.header("Vary") == "Accept-Encoding"
    assert result.body == TEXT


@pytest.mark.parametrize(
    ("etag", "compressed", "identity"),
    [
        ('"abc"', 'W/"abc"', '"abc"'),  # a strong ETag is weakened
        ('W/"abc"', 'W/"abc"', 'W/"abc"'),  # a weak one stays
        ("abc", None, "abc"),  # malformed: dropped, as nginx does
    ],
)
def test_etag(etag: str, compressed: str | None, identity: str) -> None:
    app = Compress(text_app(headers=[*HTML, ("ETag", etag)]))
    assert call(app, accept_encoding="gzip").header("ETag") == compressed
    assert call(app).header("ETag") == identity


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        ([("Vary", "Cookie")], ["Cookie, Accept-Encoding"]),
        ([("vary", "Cookie, Origin")], ["Cookie, Origin, Accept-Encoding"]),
        ([("Vary", "accept-encoding")], ["accept-encoding"]),
        ([("Vary", "Cookie,Accept-Encoding")], ["Cookie,Accept-Encoding"]),
        ([("Vary", "*")], ["*"]),
        ([("Vary", "Cookie"), ("Vary", "Origin")], ["Cookie, Accept-Encoding", "Origin"]),
        ([("Vary", "Cookie"), ("Vary", "Accept-Encoding")], ["Cookie", "Accept-Encoding"]),
        ([("Vary", "")], ["Accept-Encoding"]),
    ],
)
@pytest.mark.parametrize("accept", ["gzip", "identity"])
def test_vary_is_merged(vary: list[tuple[str, str]], expected: list[str], accept: str) -> None:
    app = Compress(text_app(headers=[*HTML, *vary]))
    result = call(app, accept_encoding=accept)
    assert [v for n, v in result.headers if n.lower() == "vary"] == expected


def test_the_apps_header_list_is_not_changed() -> None:
    headers = [*HTML, ("Vary", "Cookie"), ("ETag", '"x"'), ("Content-Length", str(len(TEXT)))]
    before = list(headers)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", headers)
        return [TEXT]

    call(Compress(app), accept_encoding="gzip")
    call(Compress(app))
    assert headers == before


# -- what is not compressed -------------------------------------------------------------------
def skipped(result: Result, vary: bool) -> None:
    assert result.header("Content-Encoding") is None
    assert (result.header("Vary") == "Accept-Encoding") is vary, result.headers


def test_no_accept_encoding_still_varies() -> None:
    result = call(Compress(text_app()))
    skipped(result, vary=True)
    assert result.body == TEXT


def test_gzip_refused() -> None:
    result = call(Compress(text_app()), accept_encoding="gzip;q=0, br;q=0, zstd;q=0")
    skipped(result, vary=True)


def test_small_declared_length() -> None:
    small = b"x" * 1023
    headers = [*HTML, ("Content-Length", "1023")]
    result = call(Compress(text_app(small, headers, whole=False)), accept_encoding="gzip")
    skipped(result, vary=False)
    assert result.header("Content-Length") == "1023"
    assert result.body == small
    # At min_size it is compressed.
    headers = [*HTML, ("Content-Length", "1024")]
    result = call(Compress(text_app(b"x" * 1024, headers)), accept_encoding="gzip")
    assert result.header("Content-Encoding") == "gzip"


def test_small_whole_body() -> None:
    result = call(Compress(text_app(b"x" * 100)), accept_encoding="gzip")
    skipped(result, vary=True)
    assert result.body == b"x" * 100
    result = call(Compress(text_app(b"x" * 100), min_size=10), accept_encoding="gzip")
    assert gzip.decompress(result.body) == b"x" * 100


def test_a_small_stream_of_unknown_length_is_compressed() -> None:
    # Its length is not known before its first chunk goes: no buffering.
    result = call(Compress(text_app(b"tiny", whole=False)), accept_encoding="gzip")
    assert result.header("Content-Encoding") == "gzip"
    assert gzip.decompress(result.body) == b"tiny"


def test_incompressible_whole_body_is_sent_as_it_is() -> None:
    noise = os.urandom(4096)
    result = call(Compress(text_app(noise)), accept_encoding="gzip")
    skipped(result, vary=True)
    assert result.body == noise


def test_empty_body() -> None:
    result = call(Compress(text_app(b""), min_size=0), accept_encoding="gzip")
    skipped(result, vary=True)
    assert result.body == b""

    def nothing(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield from ()

    result = call(Compress(nothing), accept_encoding="gzip")
    skipped(result, vary=True)
    assert result.body == b""


def test_an_empty_first_value_commits_the_head() -> None:
    # The server may send the head as soon as a value comes (wsgiref's
    # validator insists on start_response by then), so the coding is chosen.
    result = call(Compress(text_app(b"", whole=False)), accept_encoding="gzip")
    assert result.values[0] == b""
    assert result.header("Content-Encoding") == "gzip"
    assert gzip.decompress(result.body) == b""


def test_already_encoded() -> None:
    packed = gzip.compress(TEXT)
    app = Compress(text_app(packed, [*HTML, ("Content-Encoding", "gzip")]))
    result = call(app, accept_encoding="br, gzip")
    assert result.header("Content-Encoding") == "gzip"
    assert result.header("Vary") is None
    assert result.body == packed


def test_partial_content() -> None:
    part = TEXT[:2000]
    headers = [*HTML, ("Content-Range", f"bytes 0-1999/{len(TEXT)}")]
    app = Compress(text_app(part, headers, "206 Partial Content"))
    result = call(app, accept_encoding="gzip", range="bytes=0-1999")
    skipped(result, vary=False)
    assert result.body == part


def test_range_request() -> None:
    # The app ignored the Range: a whole 200, of the identity bytes.
    result = call(Compress(text_app()), accept_encoding="gzip", range="bytes=0-99")
    skipped(result, vary=True)
    assert result.body == TEXT


def test_head_is_left_alone() -> None:
    """As nginx's gzip module: no Content-Encoding, no Vary, the identity
    Content-Length."""
    headers = [*HTML, ("Content-Length", str(len(TEXT)))]
    result = call(Compress(text_app(headers=headers)), "HEAD", accept_encoding="gzip")
    skipped(result, vary=False)
    assert result.header("Content-Length") == str(len(TEXT))


@pytest.mark.parametrize(
    "status", ["204 No Content", "304 Not Modified", "103 Early Hints", "101 Switching"]
)
def test_statuses_without_a_body(status: str) -> None:
    # validate=False: wsgiref's validator refuses a body for these.
    app = Compress(text_app(b"", status=status))
    result = call(app, accept_encoding="gzip", validate=False)
    skipped(result, vary=False)
    assert result.status == status


@pytest.mark.parametrize("status", ["201 Created", "404 Not Found", "500 Internal Server Error"])
def test_other_statuses_are_compressed(status: str) -> None:
    result = call(Compress(text_app(status=status)), accept_encoding="gzip")
    assert result.header("Content-Encoding") == "gzip"


@pytest.mark.parametrize("value", ["no-transform", "public, No-Transform", "max-age=3"])
def test_no_transform(value: str) -> None:
    app = Compress(text_app(headers=[*HTML, ("Cache-Control", value)]))
    result = call(app, accept_encoding="gzip")
    if "transform" in value.lower():
        skipped(result, vary=False)
        assert result.body == TEXT
    else:
        assert result.header("Content-Encoding") == "gzip"


@pytest.mark.parametrize(
    ("content_type", "compressed"),
    [
        ("text/html", True),
        ("text/plain; charset=utf-8", True),
        ("Text/CSS", True),
        ("text/event-stream", True),
        ("application/json", True),
        ("application/javascript", True),
        ("application/xml", True),
        ("image/svg+xml", True),
        ("application/problem+json", True),
        ("application/atom+xml; charset=utf-8", True),
        ("application/octet-stream", False),
        ("image/png", False),
        ("application/zip", False),
        ("video/mp4", False),
        ("application/jsonx", False),
        ("application/json-seq", False),
        (None, False),
    ],
)
def test_types(content_type: str | None, compressed: bool) -> None:
    headers = [] if content_type is None else [("Content-Type", content_type)]
    result = call(Compress(text_app(headers=headers)), accept_encoding="gzip", validate=False)
    assert (result.header("Content-Encoding") == "gzip") is compressed
    assert (result.header("Vary") is not None) is compressed


def test_custom_types() -> None:
    png = [("Content-Type", "image/png")]
    app = Compress(text_app(headers=png), types=["image/*"])
    assert call(app, accept_encoding="gzip").header("Content-Encoding") == "gzip"
    app = Compress(text_app(), types=["application/json"])
    assert call(app, accept_encoding="gzip").header("Content-Encoding") is None
    app = Compress(text_app(headers=png), types="text/*, image/*")  # as a command line has it
    assert call(app, accept_encoding="gzip").header("Content-Encoding") == "gzip"
    app = Compress(text_app(headers=png), types=["*"])
    assert call(app, accept_encoding="gzip").header("Content-Encoding") == "gzip"
    assert "text/*" in DEFAULT_TYPES


# -- streaming ---------------------------------------------------------------------------------
CHUNKS = [b"first part\n" * 50, b"second part\n" * 3, b"third\n", b"fourth\n" * 200]


@pytest.mark.parametrize("coding", CODINGS)
def test_streaming_decodes_chunk_by_chunk(coding: str) -> None:
    """After each value the server pulls, the bytes so far decode to the
    app's chunks so far, and the app was not asked for more."""
    produced: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for chunk in CHUNKS:
            produced.append(chunk)
            yield chunk

    decoder = Decoder(coding)
    decoded = bytearray()

    def each(result: Result) -> None:
        decoded.extend(decoder.feed(result.values[-1]))
        if len(result.values) <= len(CHUNKS):
            assert len(produced) == len(result.values)
            assert bytes(decoded) == b"".join(produced)

    result = call(Compress(app), accept_encoding=coding, each=each)
    assert result.header("Content-Encoding") == coding
    assert bytes(decoded) == b"".join(CHUNKS)
    assert decode(coding, result.body) == b"".join(CHUNKS)
    assert len(result.values) == len(CHUNKS) + 1  # the encoder's tail


@pytest.mark.parametrize("coding", CODINGS)
def test_write_callable_streams(coding: str) -> None:
    decoder = Decoder(coding)
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        for number, chunk in enumerate(CHUNKS[:3]):
            write(chunk)
            seen.append(decoder.feed(written[number]))
            assert b"".join(seen) == b"".join(CHUNKS[: number + 1])
        return [CHUNKS[3]]

    written: list[bytes] = []
    result = Result(written=written)
    compress = Compress(app)

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        result.starts.append((status, headers, exc_info))
        return written.append

    body = compress(environ_for(accept_encoding=coding), start_response)
    result.values = list(body)
    assert result.header("Content-Encoding") == coding
    assert decode(coding, result.body) == b"".join(CHUNKS)


def test_empty_chunks_yield_empty_values() -> None:
    """One value for each value of the app (PEP 3333), and b"" for b""."""
    chunks = [b"", TEXT, b"", b"", b"end"]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield from chunks

    result = call(Compress(app), accept_encoding="gzip")
    assert [bool(value) for value in result.values] == [False, True, False, False, True, True]
    assert gzip.decompress(result.body) == TEXT + b"end"


def test_start_response_inside_the_generator() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "image/png")])
        yield b"\x89PNG" * 500

    def texty(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield TEXT

    result = call(Compress(app), accept_encoding="gzip")
    skipped(result, vary=False)
    assert result.body == b"\x89PNG" * 500
    result = call(Compress(texty), accept_encoding="gzip")
    assert gzip.decompress(result.body) == TEXT


# -- errors and close() --------------------------------------------------------------------------
class Closing:
    """An app's iterable that records close() and can fail after a chunk."""

    def __init__(self, chunks: list[bytes], fail_after: int | None = None) -> None:
        self.chunks = chunks
        self.fail_after = fail_after
        self.closed = 0
        self.error = RuntimeError("the app failed")

    def __iter__(self) -> Iterator[bytes]:
        for number, chunk in enumerate(self.chunks):
            if number == self.fail_after:
                raise self.error
            yield chunk

    def close(self) -> None:
        self.closed += 1


def closing_app(body: Closing, content_type: str = "text/plain") -> App:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Closing:
        start_response("200 OK", [("Content-Type", content_type)])
        return body

    return app


@pytest.mark.parametrize("content_type", ["text/plain", "image/png"])
@pytest.mark.parametrize("accept", ["gzip", "identity"])
def test_close_is_called(content_type: str, accept: str) -> None:
    body = Closing([TEXT, TEXT])
    call(Compress(closing_app(body, content_type)), accept_encoding=accept)
    assert body.closed == 1


def test_close_without_iterating() -> None:
    body = Closing([TEXT])
    iterable = Compress(closing_app(body))(environ_for(accept_encoding="gzip"), _start)
    close = getattr(iterable, "close", None)
    assert close is not None
    close()
    assert body.closed == 1


def test_close_of_a_list_subclass() -> None:
    class Parts(list[bytes]):
        closed = 0

        def close(self) -> None:
            Parts.closed += 1

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Parts:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Parts([TEXT])

    result = call(Compress(app), accept_encoding="gzip")
    assert gzip.decompress(result.body) == TEXT
    assert Parts.closed == 1


@pytest.mark.parametrize("fail_after", [0, 1])
def test_error_while_iterating_propagates_and_closes(fail_after: int) -> None:
    body = Closing([TEXT, TEXT], fail_after=fail_after)
    with pytest.raises(RuntimeError) as caught:
        call(Compress(closing_app(body)), accept_encoding="gzip", validate=False)
    assert caught.value is body.error
    assert body.closed == 1


def test_error_in_the_app_call_propagates() -> None:
    error = ValueError("broken")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise error

    with pytest.raises(ValueError) as caught:
        Compress(app)(environ_for(accept_encoding="gzip"), _start)
    assert caught.value is error


def _start(status: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
    return lambda data: None


def test_exc_info_before_the_body_replaces_the_head() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("ETag", '"v1"')])
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Internal Server Error", HTML, sys.exc_info())
        return [b"<p>sorry</p>" * 200]

    result = call(Compress(app), accept_encoding="gzip")
    assert [start[0] for start in result.starts] == ["500 Internal Server Error"]
    assert result.header("ETag") is None
    assert gzip.decompress(result.body) == b"<p>sorry</p>" * 200


def test_exc_info_after_a_passed_head_goes_upstream() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "image/png")])
        try:
            raise KeyError("late")
        except KeyError:
            start_response("500 Internal Server Error", HTML, sys.exc_info())
        return [TEXT]

    result = call(Compress(app), accept_encoding="gzip")
    assert [start[0] for start in result.starts] == ["200 OK", "500 Internal Server Error"]
    assert result.starts[1][2] is not None  # the server got the exc_info
    assert result.header("Vary") == "Accept-Encoding"
    assert result.header("Content-Encoding") is None  # the head was passed: stays identity


def test_exc_info_after_the_compressed_head_reraises() -> None:
    error = KeyError("late")

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield TEXT
        try:
            raise error
        except KeyError:
            start_response("500 Internal Server Error", HTML, sys.exc_info())
        yield b"never"

    with pytest.raises(KeyError) as caught:
        call(Compress(app), accept_encoding="gzip", validate=False)
    assert caught.value is error


def test_start_response_twice_without_exc_info() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [TEXT]

    with pytest.raises(AssertionError):
        Compress(app)(environ_for(accept_encoding="gzip"), _start)


def test_body_before_start_response() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        yield b"oops"

    with pytest.raises(AssertionError):
        call(Compress(app), accept_encoding="gzip", validate=False)


def test_a_chunk_that_is_not_bytes() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[Any]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield "text"

    with pytest.raises(TypeError):
        call(Compress(app), accept_encoding="gzip", validate=False)


# -- through dumbwaiter's gateway ----------------------------------------------------------------
def gateway_stream(accept: str) -> FakeStream:
    cgi = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_ACCEPT_ENCODING": accept,
    }
    return FakeStream(cgi)


def test_gateway_sends_a_compressed_list_in_one_piece() -> None:
    stream = serve(Compress(text_app()), gateway_stream("gzip"))
    assert stream.kinds() == ["start"]
    _, status, headers, body, end = stream.head
    assert status == "200 OK" and end
    assert ("Content-Length", str(len(body))) in headers
    assert gzip.decompress(body) == TEXT


def test_gateway_streams_and_aborts_on_a_late_error() -> None:
    body = Closing([TEXT, TEXT], fail_after=1)
    stream = serve(Compress(closing_app(body)), gateway_stream("gzip"))
    assert stream.kinds() == ["start", "abort"]  # never a complete-looking gzip
    assert zlib.decompressobj(31).decompress(bytes(stream.sent)) == TEXT
    assert body.closed == 1


def test_gateway_file_wrapper_is_iterated_when_compressed(tmp_path: Any) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(TEXT)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [*HTML, ("Content-Length", str(len(TEXT)))])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 1024)

    stream = gateway_stream("gzip")
    stream.sendfile_ok = True
    serve(Compress(app), stream)
    assert "sendfile" not in stream.kinds()
    assert gzip.decompress(bytes(stream.sent)) == TEXT
    # Not compressed: the wrapper reaches the gateway, and sendfile.
    stream = gateway_stream("identity")
    stream.sendfile_ok = True
    serve(Compress(app), stream)
    assert "sendfile" in stream.kinds()
    assert bytes(stream.sent) == TEXT
