"""What an application may put in a response head (dumbwaiter.fields)."""

from __future__ import annotations

import http

import pytest

from dumbwaiter.fields import check_name, check_value, pairs_of, status_code


@pytest.mark.parametrize("status", [200, 599, http.HTTPStatus.NOT_FOUND])
def test_an_int_status_is_taken(status: int) -> None:
    assert status_code(status) == int(status)
    assert type(status_code(status)) is int


@pytest.mark.parametrize("status", [100, 101, 199, 600, -1, True, "200", 200.0, None])
def test_any_other_status_is_refused(status: object) -> None:
    with pytest.raises(ValueError, match="bad status"):
        status_code(status)


def test_pairs_become_checked_text() -> None:
    raw = [(b"content-type", b"text/plain"), (bytearray(b"x-a"), memoryview(b"caf\xe9"))]
    assert pairs_of(raw) == [("content-type", "text/plain"), ("x-a", "caf\xe9")]


@pytest.mark.parametrize(
    "pair",
    [
        (b"x-a", b"1\r\nx-evil: 1"),
        (b"x-a", b"1\nx-evil: 1"),
        (b"x-a", b"1\rx"),
        (b"x-a", b"nul\x00"),
        (b"x a", b"1"),
        (b"x:a", b"1"),
        (b"", b"1"),
    ],
)
def test_a_pair_that_could_split_the_head_is_refused(pair: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="bad"):
        pairs_of([pair])


def test_text_names_and_values() -> None:
    check_name("X-Ok")
    check_value("X-Ok", "fine \t value")
    with pytest.raises(ValueError):
        check_value("X-Ok", "\u0100 is past latin-1")
    with pytest.raises(ValueError):
        check_name("b\u00e4d")
