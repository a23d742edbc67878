"""The engine under the fuzz targets of this directory.

A target is a function ``one_input(data: bytes) -> Hashable | None`` that
feeds ``data`` to a parser and asserts the properties every input must keep;
any exception out of it is a finding.  It may return a *signature* of what
the input did (event kinds, the error's message), which the built-in engine
uses as a cheap stand-in for coverage.

Two engines:

* ``atheris`` (libFuzzer, coverage-guided), when ``pip install atheris``
  worked.  The protocol modules are instrumented; the target's other code
  and httptools' C parser are not.
* ``mutate``: a dependency-free mutation fuzzer seeded from the target's
  seeds, keeping every input whose signature is new.  Weaker, but it runs
  anywhere and is deterministic for a given ``--seed``.

Either way the command line is the same::

    python fuzz/fuzz_fastcgi.py --runs 1000000            # atheris if installed
    python fuzz/fuzz_fastcgi.py --engine mutate --runs 200000 --seed 1
    python fuzz/fuzz_fastcgi.py --replay crash-1234...    # re-run saved inputs

and the last line printed is ``<name>: N inputs in T s (R inputs/s) ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import os
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Literal

Target = Callable[[bytes], "Hashable | None"]

HERE = Path(__file__).resolve().parent
#: Byte values that find boundaries: lengths 127/128, 0xFFFF, digits, CR/LF.
INTERESTING = [0, 1, 7, 8, 9, 0x0A, 0x0D, 0x20, 0x2C, 0x30, 0x3A, 0x3B, 0x7F, 0x80, 0xFE, 0xFF]


def _wants_atheris(argv: Sequence[str]) -> bool:
    if "--replay" in argv:
        return False
    for i, arg in enumerate(argv):
        if arg == "--engine" and i + 1 < len(argv):
            return argv[i + 1] != "mutate"
        if arg.startswith("--engine="):
            return arg.split("=", 1)[1] != "mutate"
    return True


def instrumented(main: bool) -> contextlib.AbstractContextManager[object]:
    """``with instrumented(__name__ == "__main__"): import ...``: atheris
    instruments the modules imported in the block when it is the engine."""
    if main and _wants_atheris(sys.argv):
        try:
            import atheris
        except ImportError:
            return contextlib.nullcontext()
        return atheris.instrument_imports()  # type: ignore[no-any-return]
    return contextlib.nullcontext()


def config(data: bytes, size: int = 4) -> tuple[bytes, bytes]:
    """Split an input into its ``size`` config bytes (zero-padded) and the payload."""
    head = data[:size]
    return head + bytes(size - len(head)), data[size:]


def cuts(data: bytes, seed: int) -> list[bytes]:
    """``data`` in pieces chosen by ``seed``: byte by byte for small inputs
    one time in four, otherwise cut at up to 16 random points.  Never an
    empty piece (``b""`` means EOF to the parsers)."""
    if not data:
        return []
    rng = random.Random(seed)
    if len(data) <= 64 and seed % 4 == 0:
        return [data[i : i + 1] for i in range(len(data))]
    points = sorted({0, len(data), *(rng.randrange(len(data)) for _ in range(rng.randrange(17)))})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


# -- the built-in mutation engine --------------------------------------------------------
def _mutate(
    data: bytes, rng: random.Random, others: Sequence[bytes], tokens: Sequence[bytes], max_len: int
) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 6))):
        size = len(out)
        op = rng.randrange(12)
        at = rng.randrange(size + 1)
        if op == 0 and size:  # flip a bit
            at %= size
            out[at] ^= 1 << rng.randrange(8)
        elif op == 1 and size:  # an interesting byte
            out[at % size] = rng.choice(INTERESTING)
        elif op == 2 and size:  # a random byte
            out[at % size] = rng.randrange(256)
        elif op == 3:  # insert random bytes
            out[at:at] = rng.randbytes(rng.choice((1, 1, 2, 4, 8, 32)))
        elif op == 4 and size:  # delete a range
            del out[at : at + rng.choice((1, 1, 2, 4, 8, 64))]
        elif op == 5 and size:  # duplicate a range (a record, a header line ...)
            start = rng.randrange(size)
            piece = out[start : start + rng.choice((1, 4, 8, 16, 32, 64, 256))]
            out[at:at] = piece
        elif op == 6 and size >= 2:  # a 1/2/4-byte integer at a boundary, either byte order
            width = rng.choice((1, 2, 2, 4))
            value = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF))
            value = (value + rng.choice((-1, 0, 0, 1))) % (1 << (8 * width))
            order: Literal["big", "little"] = "big" if rng.random() < 0.5 else "little"
            at %= size
            out[at : at + width] = value.to_bytes(width, order)
        elif op == 7 and size:  # nudge a byte (a length, a digit)
            at %= size
            out[at] = (out[at] + rng.choice((-1, 1))) % 256
        elif op == 8 and others:  # splice with another input
            other = rng.choice(others)
            cut = rng.randrange(len(other) + 1)
            out[at:] = other[cut:]
        elif op == 9 and size:  # truncate
            del out[at:]
        elif op == 10:  # ASCII digits somewhere (netstrings, lengths), some very long
            digits = str(rng.choice((0, 1, 9, 10, 99, 127, 128, 65535, 10**30))).encode()
            out[at:at] = digits * rng.choice((1, 1, 1, 2, 40, 4400))
        elif op == 11 and tokens:  # a token of the protocol
            out[at:at] = rng.choice(tokens)
    return bytes(out[:max_len])


def _run_mutate(
    name: str,
    target: Target,
    seeds: list[bytes],
    tokens: Sequence[bytes],
    runs: int,
    seconds: float,
    seed: int,
    max_len: int,
    crashes: Path,
) -> int:
    rng = random.Random(seed)
    corpus = [s[:max_len] for s in seeds] or [b""]
    signatures: set[Hashable] = set()
    for s in corpus:
        signatures.add(_guarded(name, target, s, crashes))
    start = time.monotonic()
    done = 0
    report = start + 10
    while done < runs:
        parent = rng.choice(corpus) if rng.random() < 0.9 else rng.choice(corpus[: len(seeds)])
        data = _mutate(parent, rng, corpus, tokens, max_len)
        signature = _guarded(name, target, data, crashes)
        done += 1
        if signature is not None and signature not in signatures:
            signatures.add(signature)
            if len(corpus) < 50_000:
                corpus.append(data)
        if done % 1024 == 0:
            now = time.monotonic()
            if seconds and now - start > seconds:
                break
            if now > report:
                report = now + 30
                print(
                    f"#{done} corpus {len(corpus)} signatures {len(signatures)} "
                    f"{done / (now - start):.0f} inputs/s",
                    flush=True,
                )
    elapsed = time.monotonic() - start
    print(
        f"{name}: {done} inputs in {elapsed:.1f} s ({done / elapsed:.0f} inputs/s), "
        f"engine mutate, seed {seed}, corpus {len(corpus)}, signatures {len(signatures)}, "
        "crashes 0",
        flush=True,
    )
    return 0


def _guarded(name: str, target: Target, data: bytes, crashes: Path) -> Hashable | None:
    try:
        return target(data)
    except Exception:
        crashes.mkdir(parents=True, exist_ok=True)
        path = crashes / f"crash-{hashlib.sha1(data).hexdigest()}"
        path.write_bytes(data)
        traceback.print_exc()
        print(f"{name}: crash on {data!r}\nsaved as {path}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


# -- atheris ------------------------------------------------------------------------------
def _run_atheris(
    name: str,
    target: Target,
    seeds: list[bytes],
    runs: int,
    seconds: float,
    max_len: int,
    crashes: Path,
    corpus: Path | None,
    tokens: Sequence[bytes],
    extra: list[str],
) -> int:
    import atheris

    crashes.mkdir(parents=True, exist_ok=True)
    if corpus is None:
        corpus = Path(tempfile.mkdtemp(prefix=f"dumbwaiter-fuzz-{name}-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for data in seeds:
        (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
    # libFuzzer's dictionary format: one quoted token a line, \xNN escapes.
    dictionary = corpus.parent / f"{corpus.name}.dict"
    dictionary.write_text(
        "".join('"' + "".join(f"\\x{b:02x}" for b in token) + '"\n' for token in tokens)
    )

    def test_one_input(data: bytes) -> None:
        target(data)

    argv = [
        sys.argv[0],
        f"-runs={runs}",
        f"-max_len={max_len}",
        f"-artifact_prefix={crashes}{os.sep}",
        *([f"-dict={dictionary}"] if tokens else []),
        "-print_final_stats=1",
        *([f"-max_total_time={int(seconds)}"] if seconds else []),
        *extra,
        str(corpus),
    ]
    print(f"{name}: atheris, corpus in {corpus}", flush=True)
    atheris.Setup(argv, test_one_input)
    start = time.monotonic()
    _at_exit(name, start)
    atheris.Fuzz()
    return 0


def _at_exit(name: str, start: float) -> None:
    # libFuzzer exits the process itself; its own last lines give the count
    # ("Done N runs in T second(s)", "stat::number_of_executed_units").
    import atexit

    atexit.register(
        lambda: print(f"{name}: wall time {time.monotonic() - start:.1f} s", flush=True)
    )


def _replay(target: Target, paths: list[str]) -> int:
    for path in paths:
        data = Path(path).read_bytes()
        print(f"{path}: {len(data)} bytes: {data[:200]!r}")
        target(data)  # a finding raises with its traceback
        print("  ok")
    return 0


def main(
    name: str,
    target: Target,
    seeds: Callable[[], Iterator[bytes]],
    tokens: Sequence[bytes] = (),
    max_len: int = 4096,
) -> None:
    """The command line of a fuzz target: ``tokens`` are the protocol's
    words (a libFuzzer dictionary), ``max_len`` the default largest input."""
    parser = argparse.ArgumentParser(
        prog=f"fuzz_{name}.py", description=f"Fuzz the {name} parsers (see fuzz/README.md)."
    )
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs to run")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long")
    parser.add_argument("--engine", choices=["auto", "atheris", "mutate"], default="auto")
    parser.add_argument("--seed", type=int, default=0, help="the mutate engine's seed")
    parser.add_argument("--max-len", type=int, default=max_len, help="largest input, bytes")
    parser.add_argument("--corpus", type=Path, help="atheris' working corpus directory")
    parser.add_argument(
        "--crashes",
        type=Path,
        default=HERE / "artifacts" / name,
        help="where crashing inputs are saved",
    )
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs only")
    args, extra = parser.parse_known_args()
    if args.replay:
        raise SystemExit(_replay(target, args.replay))
    seed_list = list(seeds())
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "mutate"
        else:
            engine = "atheris"
    if engine == "atheris":
        code = _run_atheris(
            name,
            target,
            seed_list,
            args.runs,
            args.seconds,
            args.max_len,
            args.crashes,
            args.corpus,
            tokens,
            extra,
        )
    else:
        code = _run_mutate(
            name,
            target,
            seed_list,
            tokens,
            args.runs,
            args.seconds,
            args.seed,
            args.max_len,
            args.crashes,
        )
    raise SystemExit(code)
