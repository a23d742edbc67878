"""A short budget of each long fuzz target in ``fuzz/``, so CI runs them too.

Each target's ``one_input`` asserts its properties for one input (see the
target's doc); here it gets its seeds, the inputs that once found a bug, and
a few hundred inputs from hypothesis (random bytes, and its seeds mutated).
The long runs, a million inputs or more each, are in docs/robustness.md, "Fuzzing".
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Hashable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_DIR = Path(__file__).resolve().parents[3] / "fuzz"  # tests/unit/protocols/ -> the repo
#: Under HYPOTHESIS_PROFILE=fuzz every budget grows by FUZZ_SCALE (default 1000).
FUZZ = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"
SCALE = int(os.environ.get("FUZZ_SCALE", "1000")) if FUZZ else 1
NAMES = ["fastcgi", "http", "scgi", "uwsgi"]


def load(name: str) -> ModuleType:
    module_name = f"fuzz_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, FUZZ_DIR / f"{module_name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


TARGETS: dict[str, Callable[[bytes], Hashable]] = {name: load(name).one_input for name in NAMES}
SEEDS = {name: list(load(name).seeds()) for name in NAMES}

#: Inputs that found bugs (docs/robustness.md, "Found by fuzzing"), per target.
REGRESSIONS: dict[str, list[bytes]] = {
    # CONTENT_LENGTH past 4300 digits: int() raised ValueError (framed mode).
    "scgi": [
        b"\x08\x00\x00\x00CONTENT_LENGTH\x00" + b"1" * 5000 + b"\x00SCGI\x001\x00\x00\x00x",
        b"\x08\x00\x00\x00CONTENT_LENGTH\x00" + b"0" * 5000 + b"1\x00SCGI\x001\x00\x00\x00x",
    ],
    "uwsgi": [
        b"\x08\x00\x00\x00CONTENT_LENGTH\x00" + b"2" * 4400 + b"\x00\x00\x00x",
        b"\x08\x00\x00\x00CONTENT_LENGTH\x00" + b"0" * 4400 + b"1\x00\x00\x00x",
    ],
    "http": [
        # Content-Length with 4301+ leading zeros: a ValueError in an llhttp
        # callback, reported as a 400 "User callback error" for a valid request.
        b"\x00\x00\x00\x00POST / HTTP/1.1\r\nHost: h\r\nContent-Length: "
        + b"0" * 5000
        + b"5\r\n\r\nhello",
        # The same in a response the client reads.
        b"\x03\x00\x00\x01HTTP/1.1 200 OK\r\nContent-Length: " + b"0" * 5000 + b"2\r\n\r\nok",
        b"\x03\x00\x00\x01HTTP/1.1 200 OK\r\nContent-Length: " + b"7" * 5000 + b"\r\n\r\nok",
    ],
    "fastcgi": [
        # A CGI head with obs-text the client split at \x85 / stripped of \xa0.
        b"\x03\x00\x00\x00Status: 200 OK\r\nX: \xa0a\x85b\x1c\r\n\r\nbody",
        # "Status: 008" parses as status 8: lenient, not a crash.
        b"\x03\x01\x00\x00Status: 008 Notu\x00\x00\x00\x00\x00\x00\x00\x10nd\r\x93e: "
        b"\r\n\r\nno@p\x03\x01\x00\x00",
    ],
}


def budget(examples: int) -> settings:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.mark.parametrize("name", NAMES)
def test_seeds(name: str) -> None:
    assert SEEDS[name]
    for data in SEEDS[name]:
        TARGETS[name](data)


@pytest.mark.parametrize(
    ("name", "data"),
    [(name, data) for name, inputs in REGRESSIONS.items() for data in inputs],
    ids=[f"{name}-{i}" for name, inputs in REGRESSIONS.items() for i in range(len(inputs))],
)
def test_regressions(name: str, data: bytes) -> None:
    TARGETS[name](data)


@budget(60)
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=600))
def test_random_inputs(name: str, data: bytes) -> None:
    TARGETS[name](data)


@st.composite
def mutated_seeds(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(NAMES))
    data = bytearray(draw(st.sampled_from(SEEDS[name])))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return name, bytes(data)


@budget(250)
@given(mutated_seeds())
def test_mutated_seeds(case: tuple[str, bytes]) -> None:
    name, data = case
    TARGETS[name](data)
