"""The request model: BodyBuffer (memory, then an anonymous spool file) and
InputStream, the ``wsgi.input`` with EOF at the body's length."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dumbwaiter.protocols import Role
from dumbwaiter.request import (
    EMPTY_INPUT,
    BodyBuffer,
    ChunkReader,
    InputStream,
    Request,
)


def spooled(buffer: BodyBuffer) -> bool:
    """Whether ``buffer`` went to a temporary file (white-box, on purpose:
    the threshold boundary is the contract under test)."""
    return buffer._file is not None


# -- BodyBuffer ------------------------------------------------------------------


def test_small_body_stays_in_memory() -> None:
    buffer = BodyBuffer(threshold=10)
    buffer.write(b"abc")
    buffer.write(b"def")
    assert buffer.size == 6
    assert not spooled(buffer)
    stream = buffer.finish()
    assert stream.read() == b"abcdef"
    assert stream.read() == b""


def test_exactly_at_threshold_stays_in_memory(tmp_path: Path) -> None:
    buffer = BodyBuffer(threshold=8, spool_dir=str(tmp_path))
    buffer.write(b"1234")
    buffer.write(b"5678")
    assert buffer.size == 8
    assert not spooled(buffer)
    assert buffer.finish().read(100) == b"12345678"


def test_one_past_threshold_spools_to_an_anonymous_file(tmp_path: Path) -> None:
    buffer = BodyBuffer(threshold=8, spool_dir=str(tmp_path))
    buffer.write(b"1234")
    buffer.write(b"5678")
    assert not spooled(buffer)
    buffer.write(b"9")
    assert spooled(buffer)
    buffer.write(b"abc")
    # The spool file has no name: nothing in the spool directory, ever.
    assert os.listdir(tmp_path) == []
    stream = buffer.finish()
    assert os.listdir(tmp_path) == []
    assert stream.read() == b"123456789abc"
    assert stream.read() == b""
    stream.close()
    assert os.listdir(tmp_path) == []


def test_single_write_larger_than_threshold_spools(tmp_path: Path) -> None:
    buffer = BodyBuffer(threshold=4, spool_dir=str(tmp_path))
    buffer.write(b"0123456789")
    assert spooled(buffer)
    assert buffer.size == 10
    assert buffer.finish().read() == b"0123456789"
    assert os.listdir(tmp_path) == []


def test_zero_threshold_spools_any_body(tmp_path: Path) -> None:
    buffer = BodyBuffer(threshold=0, spool_dir=str(tmp_path))
    buffer.write(b"x")
    assert spooled(buffer)
    assert buffer.finish().read() == b"x"


def test_empty_body_gives_an_empty_reader() -> None:
    stream = BodyBuffer(threshold=10).finish()
    assert stream.read() == b""
    assert stream.readline() == b""
    assert stream.readlines() == []
    assert list(stream) == []


def test_discard_in_memory() -> None:
    buffer = BodyBuffer(threshold=100)
    buffer.write(b"abc")
    buffer.discard()
    assert buffer._chunks == []


def test_discard_closes_the_spool_file(tmp_path: Path) -> None:
    buffer = BodyBuffer(threshold=2, spool_dir=str(tmp_path))
    buffer.write(b"abcdef")
    file = buffer._file
    assert file is not None
    buffer.discard()
    assert file.closed
    assert not spooled(buffer)
    assert os.listdir(tmp_path) == []
    buffer.discard()  # twice is harmless


def test_request_finish_and_discard() -> None:
    request = Request(7, {"REQUEST_METHOD": "POST"}, Role.RESPONDER, threshold=4)
    assert request.filter_data is None
    assert request.input is EMPTY_INPUT
    request.add_body(b"hello world")
    request.finish()
    assert request.input.read() == b"hello world"
    assert request.filter_input is None


def test_filter_request_has_its_own_data_stream() -> None:
    request = Request(1, {}, Role.FILTER, threshold=4)
    assert request.filter_data is not None
    request.add_body(b"body")
    request.filter_data.write(b"filtered data")
    request.finish()
    assert request.input.read() == b"body"
    assert request.filter_input is not None
    assert request.filter_input.read() == b"filtered data"
    assert request.filter_input.read() == b""
    request.discard()


# -- InputStream -------------------------------------------------------------------


def test_stops_at_length_even_if_the_file_has_more() -> None:
    stream = InputStream(io.BytesIO(b"line1\nline2\nTRAILING GARBAGE"), 12)
    assert stream.readline() == b"line1\n"
    assert stream.readline(100) == b"line2\n"
    assert stream.readline() == b""
    assert stream.read() == b""
    assert stream.read(5) == b""


def test_read_variants() -> None:
    stream = InputStream(io.BytesIO(b"abcdefXYZ"), 6)
    assert stream.read(0) == b""
    assert stream.read(2) == b"ab"
    assert stream.read(None) == b"cdef"
    assert stream.read(-1) == b""


def test_readline_limits() -> None:
    stream = InputStream(io.BytesIO(b"abcdef\nghi\n"), 11)
    assert stream.readline(3) == b"abc"
    assert stream.readline(0) == b""
    assert stream.readline(None) == b"def\n"
    assert stream.readline(-1) == b"ghi\n"
    assert stream.readline() == b""


def test_readlines_with_hint() -> None:
    body = b"a\nbb\nccc\ndddd\n"
    assert InputStream(io.BytesIO(body), len(body)).readlines() == [
        b"a\n",
        b"bb\n",
        b"ccc\n",
        b"dddd\n",
    ]
    # Like io: stop once the lines read reach the hint.
    assert InputStream(io.BytesIO(body), len(body)).readlines(4) == [b"a\n", b"bb\n"]
    assert InputStream(io.BytesIO(body), 7).readlines() == [b"a\n", b"bb\n", b"cc"]


def test_iteration_stops_at_length() -> None:
    stream = InputStream(io.BytesIO(b"x\ny\nzzz"), 5)
    assert list(stream) == [b"x\n", b"y\n", b"z"]


def test_abort_makes_reads_see_eof() -> None:
    stream = InputStream(io.BytesIO(b"abc\ndef\n"), 8)
    assert stream.read(2) == b"ab"
    stream.abort()
    assert stream.read() == b""
    assert stream.read(3) == b""
    assert stream.readline() == b""
    assert stream.readlines() == []
    assert list(stream) == []


def test_close_closes_the_file_and_reads_see_eof() -> None:
    file = io.BytesIO(b"abc")
    stream = InputStream(file, 3)
    stream.close()
    assert file.closed
    assert stream.read() == b""


def test_chunk_reader_reads_across_chunks_and_lines_after() -> None:
    source = b"abc\ndefgh\nij"
    reader = ChunkReader([source[:2], memoryview(source)[2:7], bytearray(source[7:])])
    assert reader.read(1) == b"a"
    assert reader.read(4) == b"bc\nd"  # across three chunks
    assert reader.read(0) == b""
    assert reader.readline() == b"efgh\n"  # joins what is left, once
    assert reader.read(1) == b"i"
    assert reader.read() == b"j"
    assert reader.read() == b""
    single = b"whole"
    assert ChunkReader([single]).read() is single  # one bytes chunk: not copied


# -- properties ---------------------------------------------------------------------

lines = st.lists(
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
    max_size=12,
).map(lambda parts: b"\n".join(parts))
bodies = st.one_of(st.binary(max_size=300), lines)
sizes = st.one_of(st.none(), st.integers(min_value=-2, max_value=40))
operations = st.lists(st.tuples(st.sampled_from(["read", "readline"]), sizes), max_size=40)


def build(body: bytes, threshold: int, cuts: list[int], views: bool = False) -> InputStream:
    """A reader made the way the server makes it: body written in pieces,
    copies or (as the protocols hand over large records) views."""
    buffer = BodyBuffer(threshold)
    points = sorted({min(cut, len(body)) for cut in cuts})
    start = 0
    for point in [*points, len(body)]:
        if point > start:
            buffer.write(memoryview(body)[start:point] if views else body[start:point])
            start = point
    assert buffer.size == len(body)
    assert spooled(buffer) == (len(body) > threshold)
    return buffer.finish()


@settings(max_examples=300, deadline=None)
@given(
    body=bodies,
    threshold=st.integers(min_value=0, max_value=320),
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=6),
    ops=operations,
    views=st.booleans(),
)
def test_random_reads_reproduce_the_body(
    body: bytes, threshold: int, cuts: list[int], ops: list[tuple[str, int | None]], views: bool
) -> None:
    stream = build(body, threshold, cuts, views)
    got = []
    for op, size in ops:
        if op == "read":
            data = stream.read(size)
            if size is not None and size >= 0:
                assert len(data) <= size
        else:
            data = stream.readline(size)
            if size is not None and size >= 0:
                assert len(data) <= size
            # One line at most, cut only at its end.
            assert b"\n" not in data[:-1]
        got.append(data)
        remaining = len(body) - sum(map(len, got))
        if data == b"" and size != 0:
            assert remaining == 0
    got.append(stream.read())
    assert all(type(piece) is bytes for piece in got)
    assert b"".join(got) == body
    assert stream.read() == b""
    assert stream.read(10) == b""
    assert stream.readline() == b""


@settings(max_examples=200, deadline=None)
@given(body=bodies, extra=st.binary(min_size=1, max_size=50), ops=operations)
def test_random_reads_never_pass_the_length(
    body: bytes, extra: bytes, ops: list[tuple[str, int | None]]
) -> None:
    stream = InputStream(io.BytesIO(body + extra), len(body))
    got = [stream.read(size) if op == "read" else stream.readline(size) for op, size in ops]
    got.extend(stream)
    assert b"".join(got) == body


@settings(max_examples=200, deadline=None)
@given(body=bodies, threshold=st.integers(min_value=0, max_value=320))
def test_iteration_and_readlines_agree_with_splitlines(body: bytes, threshold: int) -> None:
    expected = body.splitlines(keepends=True) if b"\r" not in body else None
    by_iteration = list(build(body, threshold, []))
    by_readlines = build(body, threshold, []).readlines()
    assert b"".join(by_iteration) == body
    assert by_iteration == by_readlines
    assert all(line.endswith(b"\n") for line in by_iteration[:-1])
    if expected is not None:
        assert by_iteration == expected


@pytest.mark.parametrize("views", [False, True])
@pytest.mark.parametrize("threshold", [0, 1 << 20])
def test_large_body_round_trip(threshold: int, views: bool) -> None:
    body = os.urandom(300_000)
    stream = build(body, threshold, [1, 65536, 200_000], views)
    parts = []
    while chunk := stream.read(8192):
        parts.append(chunk)
    assert b"".join(parts) == body
