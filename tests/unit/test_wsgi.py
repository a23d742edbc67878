"""The WSGI gateway (PEP 3333), driven synchronously against a recording stream.

``FakeStream`` (tests/fake_exchange.py) implements the Exchange protocol of
``dumbwaiter.typing`` and checks the contract the connection layer relies on
after every call: at most one head, body only after it, exactly one of
start(end=True) / end() / abort(), nothing after that, and only headers the
wire can carry.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from wsgiref.validate import validator

import pytest

from dumbwaiter.protocols import Role
from dumbwaiter.wsgi import FileWrapper, WSGIGateway, fix_paths
from fake_exchange import BASE_CGI, App, FakeStream, serve

TEXT = [("Content-Type", "text/plain")]


def environ_of(stream: FakeStream, **settings: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", TEXT)
        return [b"ok"]

    serve(app, stream, **settings)
    return seen


class Closing:
    """An iterable result with a close() that records the call."""

    def __init__(self, chunks: Iterable[bytes], close_error: bool = False) -> None:
        self.chunks = iter(chunks)
        self.consumed: list[bytes] = []
        self.closed = 0
        self.close_error = close_error

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = next(self.chunks)
        self.consumed.append(chunk)
        return chunk

    def close(self) -> None:
        self.closed += 1
        if self.close_error:
            raise RuntimeError("close() failed")


def app_returning(result: Iterable[bytes], headers: list[tuple[str, str]] | None = None) -> App:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", TEXT if headers is None else headers)
        return result

    return app


# -- when the head goes out ------------------------------------------------------------


def test_head_goes_with_first_non_empty_chunk() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        yield b""
        yield b"a"
        yield b"b"

    stream = serve(validator(app))
    assert stream.calls == [
        ("start", "200 OK", TEXT, b"a", False),
        ("write", b"b"),
        ("end",),
    ]


def test_empty_iterable_sends_head_with_end() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("204 No Content", [])
        yield from ()

    stream = serve(validator(app))
    assert stream.calls == [("start", "204 No Content", [], b"", True)]


def test_list_goes_out_in_one_piece() -> None:
    stream = serve(app_returning([b"hello ", b"", b"world"]))
    assert stream.calls == [("start", "200 OK", TEXT, b"hello world", True)]


def test_tuple_and_empty_list() -> None:
    assert serve(app_returning((b"x",))).calls == [("start", "200 OK", TEXT, b"x", True)]
    assert serve(app_returning([])).calls == [("start", "200 OK", TEXT, b"", True)]


def test_generator_calling_start_response_lazily() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"lazy"

    assert serve(app).calls == [("start", "200 OK", TEXT, b"lazy", False), ("end",)]


# -- application errors ----------------------------------------------------------------


def failing_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    start_response("200 OK", TEXT)
    raise RuntimeError("secret detail 1234")
    yield b""  # pragma: no cover


def test_exception_before_head_gives_500_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="dumbwaiter.app")
    stream = serve(failing_app)
    _, status, headers, body, end = stream.head
    assert status == "500 Internal Server Error"
    assert end is True
    assert stream.kinds() == ["start"]
    assert b"Traceback" not in body and b"secret detail" not in body
    assert ("Content-Length", str(len(body))) in headers
    records = [r for r in caplog.records if r.name == "dumbwaiter.app"]
    assert records and records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None
    assert "secret detail 1234" in caplog.text


def test_exception_in_app_call_itself_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise KeyError("boom")

    caplog.set_level(logging.ERROR, logger="dumbwaiter.app")
    stream = serve(app)
    assert stream.status == "500 Internal Server Error"
    assert "boom" in caplog.text


def test_debug_puts_traceback_in_body() -> None:
    stream = serve(failing_app, debug=True)
    body = stream.head[3]
    assert stream.status == "500 Internal Server Error"
    assert b"Traceback" in body
    assert b"RuntimeError: secret detail 1234" in body
    assert ("Content-Length", str(len(body))) in stream.headers


def test_exception_after_head_aborts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="dumbwaiter.app")
    result = Closing(_chunks_then_error())
    stream = serve(app_returning(result))
    assert stream.kinds() == ["start", "write", "abort"]
    assert "end" not in stream.kinds()
    assert result.closed == 1
    assert "mid-stream failure" in caplog.text


def _chunks_then_error() -> Iterator[bytes]:
    yield b"first"
    yield b"second"
    raise ValueError("mid-stream failure")


def test_exception_after_head_with_write_callable_aborts() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"partial")
        raise RuntimeError("late")

    stream = serve(app)
    assert stream.kinds() == ["start", "abort"]


# -- exc_info --------------------------------------------------------------------------


def test_exc_info_before_head_replaces_status() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("503 Service Unavailable", TEXT, sys.exc_info())
        return [b"sorry"]

    stream = serve(validator(app))
    assert stream.status == "503 Service Unavailable"
    assert stream.sent == b"sorry"
    assert stream.kinds() in (["start"], ["start", "end"])


def test_exc_info_as_first_call() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("500 Oops", TEXT, sys.exc_info())
        return [b"oops"]

    stream = serve(app)
    assert stream.calls == [("start", "500 Oops", TEXT, b"oops", True)]


def test_exc_info_after_head_reraises_and_aborts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="dumbwaiter.app")
    reraised = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"head is out"
        try:
            raise ValueError("after the head")
        except ValueError:
            try:
                start_response("500 Oops", TEXT, sys.exc_info())
            except ValueError:
                reraised.append(True)
                raise
        yield b"never"  # pragma: no cover

    stream = serve(app)
    assert reraised == [True]
    assert stream.kinds() == ["start", "abort"]
    assert stream.status == "200 OK"
    assert "after the head" in caplog.text


# -- start_response misuse -------------------------------------------------------------


def test_second_start_response_without_exc_info_is_500() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", TEXT)
        start_response("404 Not Found", TEXT)
        return [b"body"]

    stream = serve(app)
    assert stream.status == "500 Internal Server Error"
    assert stream.head[4] is True


@pytest.mark.parametrize("result", [[b"body"], [], iter([b"x"]), iter([])])
def test_returning_without_start_response_is_500(result: Iterable[bytes]) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return result

    stream = serve(app)
    assert stream.status == "500 Internal Server Error"
    assert stream.head[4] is True


def test_write_before_start_response_is_500() -> None:
    """A generator yielding body before calling start_response()."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        yield b"no head yet"

    stream = serve(app)
    assert stream.status == "500 Internal Server Error"


def test_non_bytes_chunk_before_head_is_500() -> None:
    stream = serve(app_returning(iter(["text, not bytes"])))  # type: ignore[list-item]
    assert stream.status == "500 Internal Server Error"


def test_non_bytes_in_list_is_500() -> None:
    stream = serve(app_returning(["text"]))  # type: ignore[list-item]
    assert stream.status == "500 Internal Server Error"


# -- the write() callable --------------------------------------------------------------


def test_write_callable_sends_head_with_first_write() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"")
        write(b"one")
        write(b"two")
        return []

    stream = serve(validator(app))
    assert stream.calls == [
        ("start", "200 OK", TEXT, b"one", False),
        ("write", b"two"),
        ("end",),
    ]


def test_write_callable_mixed_with_iterable() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"written")
        return iter([b"", b"iterated", b"more"])

    stream = serve(validator(app))
    assert stream.calls == [
        ("start", "200 OK", TEXT, b"written", False),
        ("write", b"iterated"),
        ("write", b"more"),
        ("end",),
    ]


def test_write_callable_mixed_with_list() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"written")
        return [b"listed"]

    stream = serve(app)
    assert stream.sent == b"writtenlisted"
    assert stream.kinds() == ["start", "write", "end"]


def test_write_callable_rejects_str() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write("text")
        return []

    assert serve(app).status == "500 Internal Server Error"


# -- close() ---------------------------------------------------------------------------


def test_close_called_on_normal_completion() -> None:
    result = Closing([b"a", b"b"])
    stream = serve(app_returning(result))
    assert result.closed == 1
    assert stream.kinds() == ["start", "write", "end"]


def test_close_called_when_app_fails_mid_iteration() -> None:
    result = Closing(_chunks_then_error())
    serve(app_returning(result))
    assert result.closed == 1


def test_close_called_when_app_fails_before_head() -> None:
    def chunks() -> Iterator[bytes]:
        raise RuntimeError("no")
        yield b""  # pragma: no cover

    result = Closing(chunks())
    stream = serve(app_returning(result))
    assert result.closed == 1
    assert stream.status == "500 Internal Server Error"


def test_cancel_stops_iteration_and_closes() -> None:
    """The loop cancels (client gone) just after a write went out: the gateway
    stops at the next chunk boundary without pulling more from the app."""
    result = Closing(iter([b"1", b"2", b"3", b"4", b"5"]))
    stream = FakeStream(cancel_after_writes=1)
    serve(app_returning(result), stream)
    assert result.consumed == [b"1", b"2"]
    assert result.closed == 1
    assert stream.kinds().count("end") == 1
    assert "abort" not in stream.kinds()


def test_cancel_seen_by_write_stops_iteration_and_closes() -> None:
    """Cancelled between two chunks: write() returns False."""
    stream = FakeStream()

    def chunks() -> Iterator[bytes]:
        yield b"1"
        stream.cancel()
        yield b"2"
        yield b"3"  # pragma: no cover

    result = Closing(chunks())
    serve(app_returning(result), stream)
    assert result.consumed == [b"1", b"2"]
    assert result.closed == 1
    assert stream.kinds().count("end") == 1
    assert stream.kinds()[-1] == "end"


def test_cancelled_before_the_app_runs() -> None:
    stream = FakeStream()
    stream.cancel()
    result = Closing(iter([b"1", b"2", b"3"]))
    serve(app_returning(result), stream)
    assert result.closed == 1
    assert len(result.consumed) <= 1
    assert stream.kinds().count("end") + stream.kinds().count("abort") <= 1


def test_client_gone_during_write_callable_closes_cleanly() -> None:
    """write() raising because the client left must still leave one terminal call."""
    stream = FakeStream()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"1")
        stream.cancel()
        write(b"2")  # raises: the client is gone
        return [b"never"]  # pragma: no cover

    serve(app, stream)
    assert stream.kinds()[0] == "start"


def test_close_raising_is_logged_and_response_complete(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="dumbwaiter.app")
    result = Closing([b"a", b"b"], close_error=True)
    stream = serve(app_returning(result))
    assert stream.kinds() == ["start", "write", "end"]
    assert result.closed == 1
    assert "close()" in caplog.text
    assert "close() failed" in caplog.text


def test_close_raising_after_list_is_logged() -> None:
    class ClosingList(list[bytes]):
        closed = 0

        def close(self) -> None:
            self.closed += 1
            raise RuntimeError("close() failed")

    result = ClosingList([b"ab"])
    stream = serve(app_returning(result))
    assert result.closed == 1
    assert stream.sent == b"ab"


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_base_exception_during_iteration_still_finishes_response(
    exc: type[BaseException],
) -> None:
    """Even a BaseException must leave the connection a finished response
    (else its slot in the pool is never freed); end() without a head would
    be a protocol error."""

    def chunks() -> Iterator[bytes]:
        raise exc()
        yield b""  # pragma: no cover

    result = Closing(chunks())
    stream = FakeStream()
    with contextlib.suppress(exc):
        WSGIGateway(app_returning(result))(stream)  # type: ignore[arg-type]
    stream.check()
    assert result.closed == 1


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_base_exception_from_app_call_still_finishes_response(
    exc: type[BaseException],
) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise exc()

    stream = FakeStream()
    with contextlib.suppress(exc):
        WSGIGateway(app)(stream)  # type: ignore[arg-type]
    stream.check()


# -- header validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Bad", "a\r\nSet-Cookie: evil=1")],
        [("X-Bad", "a\nb")],
        [("X-Bad", "a\rb")],
        [("X-Bad", "a\0b")],
        [("X-Bad\r\nInjected", "v")],
        [("X Bad", "v")],
        [("", "v")],
        [(b"X-Bytes", "v")],
        [("X-Bytes", b"v")],
        [("X-Int", 5)],
        [["X-List", "v"]],
        [("X-Triple", "v", "w")],
        [("X-Euro", "\u20ac")],  # not latin-1: the protocol could not encode it
    ],
)
def test_bad_header_gives_500_and_never_reaches_start(headers: list[Any]) -> None:
    stream = serve(app_returning([b"body"], headers=headers))
    assert stream.status == "500 Internal Server Error"
    assert stream.head[4] is True


@pytest.mark.parametrize(
    "status",
    [
        "200",
        "200OK",
        "OK 200",
        "20 OK",
        "2000 OK",
        "200 OK\r\nX: y",
        "200 O\nK",
        b"200 OK",
        200,
        "200 \u20ac",  # not latin-1
    ],
)
def test_bad_status_gives_500(status: Any) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(status, TEXT)
        return [b"body"]

    stream = serve(app)
    assert stream.status == "500 Internal Server Error"


def test_headers_as_a_tuple_are_accepted() -> None:
    """PEP 3333 asks for a list; a tuple is taken too, by both builds (a
    compiled start_response annotated ``list`` would refuse it at the call)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", tuple(TEXT))
        return [b"ok"]

    stream = serve(app)
    assert stream.status == "200 OK"
    assert stream.headers == list(TEXT)


def test_a_bytes_status_is_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(b"200 OK", TEXT)
        return [b"ok"]

    assert serve(app).status == "500 Internal Server Error"
    assert "bad status line b'200 OK'" in caplog.text


def test_latin1_header_value_is_accepted() -> None:
    headers = [("Content-Type", "text/plain"), ("X-Name", "caf\xe9")]
    stream = serve(app_returning([b"ok"], headers=headers))
    assert stream.status == "200 OK"
    assert stream.headers == headers


def test_headers_changed_after_start_response_are_not_sent_unchecked() -> None:
    """The head goes out later than start_response(): a header the app adds
    to its list in between must not bypass validation."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        headers = [("Content-Type", "text/plain")]
        start_response("200 OK", headers)
        headers.append(("X-Late", "a\r\nInjected: 1"))
        yield b"body"

    serve(app)  # check() refuses CR/LF in whatever reached start()


# -- Content-Length --------------------------------------------------------------------


def test_declared_length_truncates_longer_iterable() -> None:
    result = Closing(iter([b"abc", b"def", b"ghi"]))
    headers = [*TEXT, ("Content-Length", "5")]
    stream = serve(app_returning(result, headers))
    assert stream.sent == b"abcde"
    assert stream.kinds()[-1] == "end"
    assert result.closed == 1


def test_declared_length_truncates_longer_list() -> None:
    stream = serve(app_returning([b"abc", b"def"], [*TEXT, ("Content-Length", "4")]))
    assert stream.calls == [("start", "200 OK", [*TEXT, ("Content-Length", "4")], b"abcd", True)]


def test_declared_length_truncates_write_callable() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", [("Content-Length", "3")])
        write(b"ab")
        write(b"cd")
        write(b"ef")
        return []

    stream = serve(app)
    assert stream.sent == b"abc"
    assert stream.kinds()[-1] == "end"


def test_declared_length_with_shorter_iterable_aborts() -> None:
    stream = serve(app_returning(iter([b"abc", b"de"]), [*TEXT, ("Content-Length", "10")]))
    assert stream.kinds()[-1] == "abort"
    assert "end" not in stream.kinds()


def test_declared_length_with_empty_iterable_is_500() -> None:
    stream = serve(app_returning(iter([]), [*TEXT, ("Content-Length", "10")]))
    assert stream.status == "500 Internal Server Error"


def test_declared_length_with_shorter_list_is_500() -> None:
    stream = serve(app_returning([b"abc"], [*TEXT, ("Content-Length", "10")]))
    assert stream.status == "500 Internal Server Error"
    assert stream.head[4] is True


def test_declared_length_met_exactly() -> None:
    stream = serve(app_returning(iter([b"abc", b"de"]), [*TEXT, ("Content-Length", "5")]))
    assert stream.sent == b"abcde"
    assert stream.kinds() == ["start", "write", "end"]


def test_declared_zero_length_empty_body() -> None:
    stream = serve(app_returning(iter([]), [*TEXT, ("Content-Length", "0")]))
    assert stream.calls == [("start", "200 OK", [*TEXT, ("Content-Length", "0")], b"", True)]


@pytest.mark.parametrize("result", [[], iter([]), [b""]])
def test_head_with_declared_length_and_no_body(result: Iterable[bytes]) -> None:
    cgi = {**BASE_CGI, "REQUEST_METHOD": "HEAD"}
    headers = [*TEXT, ("Content-Length", "1234")]
    stream = serve(app_returning(result, headers), FakeStream(cgi))
    assert stream.calls == [("start", "200 OK", headers, b"", True)]


# -- wsgi.input ------------------------------------------------------------------------

BODY = b"first line\nsecond line\n\nlast, no newline"


@pytest.fixture(params=["memory", "spooled"])
def post(request: pytest.FixtureRequest) -> Callable[[bytes], FakeStream]:
    """A POST stream, with the body in memory or spooled."""

    def make(body: bytes) -> FakeStream:
        threshold = 1 << 20 if request.param == "memory" else 4
        cgi = {**BASE_CGI, "REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body))}
        stream = FakeStream(cgi, body, threshold=threshold)
        assert (stream.request.body._file is not None) == (request.param == "spooled")
        return stream

    return make


def read_with(
    reader: Callable[[Any], Any],
    post: Callable[[bytes], FakeStream],
    body: bytes = BODY,
) -> Any:
    got: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        assert environ["CONTENT_LENGTH"] == str(len(body))
        got.append(reader(environ["wsgi.input"]))
        start_response("200 OK", TEXT)
        return [b"ok"]

    serve(app, post(body))
    return got[0]


def test_input_read_all(post: Any) -> None:
    assert read_with(lambda f: (f.read(), f.read(), f.read(1)), post) == (BODY, b"", b"")


def test_input_read_n(post: Any) -> None:
    def reader(f: Any) -> list[bytes]:
        parts = []
        while chunk := f.read(5):
            parts.append(chunk)
        parts.append(f.read(5))
        return parts

    parts = read_with(reader, post)
    assert b"".join(parts) == BODY
    assert parts[-1] == b""
    assert all(len(p) <= 5 for p in parts)


def test_input_readline(post: Any) -> None:
    def reader(f: Any) -> list[bytes]:
        return [f.readline() for _ in range(6)]

    assert read_with(reader, post) == [
        b"first line\n",
        b"second line\n",
        b"\n",
        b"last, no newline",
        b"",
        b"",
    ]


def test_input_readline_n(post: Any) -> None:
    def reader(f: Any) -> list[bytes]:
        lines = []
        while line := f.readline(4):
            lines.append(line)
        return lines

    lines = read_with(reader, post)
    assert b"".join(lines) == BODY
    assert lines[:3] == [b"firs", b"t li", b"ne\n"]
    assert all(len(line) <= 4 for line in lines)


def test_input_readlines(post: Any) -> None:
    assert read_with(lambda f: f.readlines(), post) == BODY.splitlines(keepends=True)


def test_input_iteration(post: Any) -> None:
    assert read_with(list, post) == BODY.splitlines(keepends=True)


def test_input_large_body_byte_exact(post: Any) -> None:
    body = os.urandom(100_000)

    def reader(f: Any) -> bytes:
        parts = []
        while chunk := f.read(4096):
            parts.append(chunk)
        return b"".join(parts)

    assert read_with(reader, post, body) == body


def test_input_abort_makes_reads_return_empty(post: Any) -> None:
    stream = post(BODY)
    got = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        wsgi_input = environ["wsgi.input"]
        got.append(wsgi_input.read(3))
        stream.cancel()  # the loop's FCGI_ABORT_REQUEST / client gone
        got.extend([wsgi_input.read(), wsgi_input.readline(), wsgi_input.read(10)])
        got.append(wsgi_input.readlines())
        start_response("200 OK", TEXT)
        return [b"ok"]

    serve(app, stream)
    assert got == [b"fir", b"", b"", b"", []]


def test_input_empty_body() -> None:
    got = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        f = environ["wsgi.input"]
        got.extend([f.read(), f.read(10), f.readline(), f.readlines(), list(f)])
        start_response("200 OK", TEXT)
        return []

    serve(app)
    assert got == [b"", b"", b"", [], []]


# -- environ ---------------------------------------------------------------------------


def test_required_environ_keys_and_types(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="dumbwaiter.app")
    cgi = {**BASE_CGI, "HTTPS": "on", "QUERY_STRING": "a=1"}
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.update(environ)
        environ["wsgi.errors"].write("first problem\nsecond problem\n")
        environ["wsgi.errors"].writelines(["third problem\n"])
        environ["wsgi.errors"].flush()
        start_response("200 OK", TEXT)
        return [b"ok"]

    serve(validator(app), FakeStream(cgi), multithread=True)
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING"):
        assert type(seen[key]) is str
    for key in ("SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"):
        assert type(seen[key]) is str and seen[key]
    assert seen["wsgi.version"] == (1, 0)
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["wsgi.multithread"] is True
    assert seen["wsgi.multiprocess"] is False
    assert seen["wsgi.run_once"] is False
    assert seen["wsgi.file_wrapper"] is FileWrapper
    for method in ("read", "readline", "readlines", "__iter__"):
        assert callable(getattr(seen["wsgi.input"], method))
    for method in ("write", "writelines", "flush"):
        assert callable(getattr(seen["wsgi.errors"], method))
    messages = [r.getMessage() for r in caplog.records if r.name == "dumbwaiter.app"]
    assert messages == ["first problem", "second problem", "third problem"]


def test_single_thread_is_not_multithread() -> None:
    assert environ_of(FakeStream(), multithread=False)["wsgi.multithread"] is False


@pytest.mark.parametrize(
    ("extra", "scheme"),
    [
        ({}, "http"),
        ({"HTTPS": "on"}, "https"),
        ({"HTTPS": "ON"}, "https"),
        ({"HTTPS": "1"}, "https"),
        ({"HTTPS": "off"}, "http"),
        ({"REQUEST_SCHEME": "https"}, "https"),
    ],
)
def test_url_scheme(extra: dict[str, str], scheme: str) -> None:
    assert environ_of(FakeStream({**BASE_CGI, **extra}))["wsgi.url_scheme"] == scheme


def test_https_default_port() -> None:
    cgi = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTPS": "on", "HTTP_HOST": "h"}
    environ = environ_of(FakeStream(cgi))
    assert environ["SERVER_PORT"] == "443"


@pytest.mark.parametrize(
    ("sent", "body", "expected"),
    [
        ("-1", b"abc", "3"),
        ("", b"abc", "3"),
        (None, b"abc", "3"),
        ("-1", b"", "0"),
        ("3", b"abc", "3"),
        ("0", b"", "0"),
    ],
)
def test_content_length_is_the_real_body_length(
    sent: str | None, body: bytes, expected: str
) -> None:
    cgi = {**BASE_CGI, "REQUEST_METHOD": "POST"}
    if sent is not None:
        cgi["CONTENT_LENGTH"] = sent
    environ = environ_of(FakeStream(cgi, body))
    assert environ["CONTENT_LENGTH"] == expected


def test_no_content_length_for_empty_body_is_fine() -> None:
    environ = environ_of(FakeStream(BASE_CGI))
    assert environ.get("CONTENT_LENGTH", "") in ("", "0")


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("example.org", "example.org"),
        ("example.org:8080", "example.org"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("", "localhost"),
    ],
)
def test_server_name_from_host(host: str, name: str) -> None:
    cgi = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": host}
    assert environ_of(FakeStream(cgi))["SERVER_NAME"] == name


@pytest.mark.parametrize(
    ("host", "port"),
    [("example.org", "80"), ("example.org:8080", "8080"), ("[::1]:8080", "8080"), ("[::1]", "80")],
)
def test_server_port_from_host_when_server_name_is_derived(host: str, port: str) -> None:
    """When SERVER_NAME comes from Host, SERVER_PORT must come from it too:
    "80" beside Host: example.org:8080 rebuilds a wrong URL."""
    cgi = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": host}
    assert environ_of(FakeStream(cgi))["SERVER_PORT"] == port


def test_server_port_from_front_is_kept() -> None:
    cgi = {"PATH_INFO": "/", "HTTP_HOST": "h:8080", "SERVER_NAME": "h", "SERVER_PORT": "81"}
    assert environ_of(FakeStream(cgi))["SERVER_PORT"] == "81"


def test_server_name_defaults() -> None:
    environ = environ_of(FakeStream({"PATH_INFO": "/"}))
    assert environ["SERVER_NAME"] == "localhost"
    assert environ["SERVER_PORT"] == "80"
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_front_server_values_win_over_peer() -> None:
    cgi = {**BASE_CGI, "REMOTE_ADDR": "203.0.113.9", "SERVER_NAME": "front"}
    peer = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5555", "SERVER_NAME": "sock"}
    environ = environ_of(FakeStream(cgi, peer=peer))
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert environ["REMOTE_PORT"] == "5555"
    assert environ["SERVER_NAME"] == "front"


def test_filter_role_data_stream() -> None:
    cgi = {**BASE_CGI, "FCGI_DATA_LENGTH": "13", "FCGI_DATA_LAST_MOD": "1700000000"}
    stream = FakeStream(cgi, b"stdin", role=Role.FILTER, data=b"line1\nline2\nX")
    got: list[Any] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        data = environ["dumbwaiter.fcgi_data"]
        got.append(environ["dumbwaiter.fcgi_role"])
        got.append(environ["wsgi.input"].read(100))
        got.append(data.readline())
        got.append(data.read())
        got.append(data.read())
        got.append(data.readline())
        start_response("200 OK", TEXT)
        return [b"ok"]

    serve(validator(app), stream)
    assert got == ["FILTER", b"stdin", b"line1\n", b"line2\nX", b"", b""]


def test_responder_has_no_fcgi_data() -> None:
    environ = environ_of(FakeStream())
    assert "dumbwaiter.fcgi_data" not in environ
    assert "dumbwaiter.fcgi_role" not in environ


def test_script_name_option_applies_in_gateway() -> None:
    cgi = {**BASE_CGI, "SCRIPT_NAME": "", "PATH_INFO": "/app/x"}
    environ = environ_of(FakeStream(cgi), script_name="/app")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/x")


# -- fix_paths -------------------------------------------------------------------------


def paths(environ: dict[str, Any], script_name: str | None = None) -> tuple[str, str]:
    environ = dict(environ)
    fix_paths(environ, script_name)
    return environ["SCRIPT_NAME"], environ["PATH_INFO"]


def test_nginx_default_params_whole_uri_in_script_name() -> None:
    environ = {"SCRIPT_NAME": "/a/b", "REQUEST_URI": "/a/b?x=1", "DOCUMENT_URI": "/a/b"}
    assert paths(environ) == ("", "/a/b")


def test_nginx_root() -> None:
    assert paths({"SCRIPT_NAME": "/", "REQUEST_URI": "/"}) == ("", "/")


def test_nginx_split_path_info() -> None:
    environ = {"SCRIPT_NAME": "/app", "REQUEST_URI": "/app/x?q=2"}
    assert paths(environ) == ("/app", "/x")


def test_script_name_not_a_path_segment_prefix() -> None:
    """SCRIPT_NAME=/app does not cover /application: PATH_INFO must be
    empty or start with '/' (PEP 3333)."""
    environ = {"SCRIPT_NAME": "/app", "REQUEST_URI": "/application"}
    script, path = paths(environ)
    assert path == "" or path.startswith("/")
    assert script + path == "/application"
    assert (script, path) == ("", "/application")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/a%2Fb", "/a/b"),
        ("/caf%C3%A9", "/caf\xc3\xa9"),
        ("/caf%c3%a9?q=%C3%A9", "/caf\xc3\xa9"),
        ("/100%25", "/100%"),
        ("/sp%20ace", "/sp ace"),
    ],
)
def test_percent_encoded_request_uri(uri: str, expected: str) -> None:
    """PEP 3333: PATH_INFO is the URL-decoded bytes as a latin-1 str."""
    script, path = paths({"SCRIPT_NAME": uri.partition("?")[0], "REQUEST_URI": uri})
    assert (script, path) == ("", expected)
    assert path.encode("latin-1").decode("utf-8")  # the UTF-8 bytes survive


def test_percent_encoded_with_script_name_option() -> None:
    environ = {"REQUEST_URI": "/app/caf%C3%A9"}
    assert paths(environ, "/app") == ("/app", "/caf\xc3\xa9")


def test_lighttpd_fix_root_scriptname() -> None:
    environ = {"SCRIPT_NAME": "", "PATH_INFO": "/x", "REQUEST_URI": "/x"}
    assert paths(environ) == ("", "/x")


def test_lighttpd_prefix() -> None:
    environ = {"SCRIPT_NAME": "/app", "PATH_INFO": "/x", "REQUEST_URI": "/app/x"}
    assert paths(environ) == ("/app", "/x")


def test_path_info_given_without_script_name() -> None:
    assert paths({"PATH_INFO": "/x"}) == ("", "/x")


def test_missing_everything() -> None:
    assert paths({}) == ("", "")


def test_script_name_option_with_empty_script_name_from_front() -> None:
    environ = {"SCRIPT_NAME": "", "PATH_INFO": "/app/x", "REQUEST_URI": "/app/x"}
    assert paths(environ, "/app") == ("/app", "/x")


def test_script_name_option_with_nginx_default_params() -> None:
    environ = {"SCRIPT_NAME": "/app/x", "REQUEST_URI": "/app/x?y=1"}
    assert paths(environ, "/app") == ("/app", "/x")


def test_script_name_option_exact_prefix() -> None:
    assert paths({"SCRIPT_NAME": "", "PATH_INFO": "/app"}, "/app") == ("/app", "")


def test_script_name_option_root() -> None:
    environ = {"SCRIPT_NAME": "/x", "PATH_INFO": ""}
    assert paths(environ, "") == ("", "/x")


@pytest.mark.parametrize("path", ["/other", "/application", "/ap", "/"])
def test_script_name_option_path_outside_prefix(path: str) -> None:
    environ = {"SCRIPT_NAME": "", "PATH_INFO": path}
    assert paths(environ, "/app") == ("", path)


# -- FileWrapper -----------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000)  # 256000 bytes, not a block multiple
    return path


def file_app(path: Path, length: str | None, seek: int = 0, holder: list[Any] | None = None) -> App:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = [("Content-Type", "application/octet-stream")]
        if length is not None:
            headers.append(("Content-Length", length))
        start_response("200 OK", headers)
        file = open(path, "rb")  # noqa: SIM115 - closed by the wrapper
        file.seek(seek)
        if holder is not None:
            holder.append(file)
        return environ["wsgi.file_wrapper"](file, 8192)

    return app


def test_file_wrapper_uses_sendfile(data_file: Path) -> None:
    files: list[Any] = []
    stream = FakeStream(sendfile_ok=True)
    serve(file_app(data_file, "256000", holder=files), stream)
    assert stream.kinds() == ["start", "sendfile", "end"]
    assert stream.head[3] == b"" and stream.head[4] is False
    _, file, offset, count = stream.calls[1]
    assert file is files[0]
    assert (offset, count) == (0, 256000)
    assert bytes(stream.sent) == data_file.read_bytes()
    assert files[0].closed


def test_file_wrapper_sendfile_from_offset(data_file: Path) -> None:
    stream = FakeStream(sendfile_ok=True)
    serve(file_app(data_file, "1000", seek=5000), stream)
    _, _, offset, count = stream.calls[1]
    assert (offset, count) == (5000, 1000)
    assert bytes(stream.sent) == data_file.read_bytes()[5000:6000]


def test_file_wrapper_falls_back_to_write_when_sendfile_refused(data_file: Path) -> None:
    files: list[Any] = []
    stream = FakeStream(sendfile_ok=False)
    serve(file_app(data_file, "256000", holder=files), stream)
    kinds = stream.kinds()
    assert kinds[:2] == ["start", "sendfile"]
    assert set(kinds[2:-1]) == {"write"}
    assert kinds[-1] == "end"
    assert bytes(stream.sent) == data_file.read_bytes()
    assert files[0].closed


def test_file_wrapper_without_length_iterates(data_file: Path) -> None:
    files: list[Any] = []
    stream = FakeStream(sendfile_ok=True)
    serve(file_app(data_file, None, holder=files), stream)
    assert "sendfile" not in stream.kinds()
    assert stream.head[3] and len(stream.head[3]) == 8192
    assert bytes(stream.sent) == data_file.read_bytes()
    assert files[0].closed


def test_file_wrapper_length_beyond_file_iterates_and_aborts(data_file: Path) -> None:
    stream = FakeStream(sendfile_ok=True)
    serve(file_app(data_file, "300000"), stream)
    assert "sendfile" not in stream.kinds()
    assert stream.kinds()[-1] == "abort"


def test_file_wrapper_shorter_length_truncates(data_file: Path) -> None:
    stream = FakeStream(sendfile_ok=False)
    serve(file_app(data_file, "10000"), stream)
    assert bytes(stream.sent) == data_file.read_bytes()[:10000]
    assert stream.kinds()[-1] == "end"


def test_file_wrapper_empty_file_with_zero_length(tmp_path: Path) -> None:
    """An empty static file: the loop's sendfile refuses count=0, so the
    gateway must not ask for it (the response would be aborted)."""
    path = tmp_path / "empty"
    path.write_bytes(b"")
    stream = FakeStream(sendfile_ok=True)
    serve(file_app(path, "0"), stream)
    assert stream.status == "200 OK"
    assert stream.kinds()[-1] == "end" or stream.head[4] is True
    assert "abort" not in stream.kinds()


def test_file_wrapper_not_a_real_file() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Length", "6")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"abcdef"), 4)

    stream = serve(app, FakeStream(sendfile_ok=True))
    assert "sendfile" not in stream.kinds()
    assert stream.sent == b"abcdef"


def test_file_wrapper_is_iterable_and_closes() -> None:
    with tempfile.TemporaryFile() as file:
        file.write(b"x" * 10)
        file.seek(0)
        wrapper = FileWrapper(file, 4)
        assert list(wrapper) == [b"xxxx", b"xxxx", b"xx"]
        wrapper.close()  # type: ignore[attr-defined]
        assert file.closed


def test_file_wrapper_sendfile_cancelled_ends(data_file: Path) -> None:
    """sendfile refused because the client left: no fallback, one end()."""
    stream = FakeStream(sendfile_ok=False)
    real = stream.sendfile

    def sendfile(file: IO[bytes], offset: int, count: int) -> bool:
        result = real(file, offset, count)
        stream.cancel()
        return result

    stream.sendfile = sendfile  # type: ignore[method-assign]
    serve(file_app(data_file, "256000"), stream)
    assert stream.kinds() == ["start", "sendfile", "end"]


@pytest.mark.parametrize(
    ("uri", "filename", "expected"),
    [
        ("/f/echo/z?k=1", "proxy:fcgi://127.0.0.1:9000/echo/z", ("/f", "/echo/z")),
        ("/deep/mount/x%20y", "proxy:scgi://[::1]:4000/x%20y", ("/deep/mount", "/x y")),
        ("/x", "proxy:fcgi://localhost/x", ("", "/x")),
        ("/x", "/var/www/x.py", ("", "/x")),  # not Apache's proxy: the usual rule
    ],
)
def test_apache_mod_proxy_paths(uri: str, filename: str, expected: tuple[str, str]) -> None:
    """Apache mod_proxy_fcgi/scgi send SCRIPT_NAME = the whole path and no
    PATH_INFO; SCRIPT_FILENAME names the part below the ProxyPass prefix."""
    path = uri.partition("?")[0]
    environ = {"REQUEST_URI": uri, "SCRIPT_NAME": path, "SCRIPT_FILENAME": filename}
    fix_paths(environ, None)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == expected


def test_over_http_the_host_header_names_the_server_not_the_socket() -> None:
    # Behind an HTTP proxy the socket is dumbwaiter's own; the client asked
    # for the Host, and URLs rebuilt from SERVER_NAME/PORT must say that.
    cgi = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "example.org:8443"}
    peer = {"REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9000"}
    environ = environ_of(FakeStream(cgi, peer=peer))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "8443")
    https = dict(cgi, HTTP_HOST="example.org", HTTPS="on")
    environ = environ_of(FakeStream(https, peer=peer))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "443")
    environ = environ_of(FakeStream({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, peer=peer))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "9000")


def test_an_empty_server_name_is_never_passed_on() -> None:
    # nginx sends SERVER_NAME "" from a server block without server_name.
    cgi = dict(BASE_CGI, SERVER_NAME="", HTTP_HOST="example.org")
    assert environ_of(FakeStream(cgi))["SERVER_NAME"] == "example.org"
    assert environ_of(FakeStream(dict(cgi, HTTP_HOST="")))["SERVER_NAME"] == "localhost"
