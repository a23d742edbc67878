"""Content codings (RFC 9110 section 8.4.1): the encoders this machine has
(gzip always; br and zstd when their packages are installed), and the
negotiation of one from ``Accept-Encoding`` (section 12.5.3)."""

from __future__ import annotations

import functools
import importlib
import re
import zlib
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ENCODERS", "Encoder", "available_encodings", "negotiate"]


# -- encoders --------------------------------------------------------------------------------
class Encoder(Protocol):
    """One response's compressor."""

    def chunk(self, data: bytes) -> bytes:
        """``data`` compressed and flushed: the output decodes to all input so far."""

    def finish(self, data: bytes = b"") -> bytes:
        """``data`` and the end of the stream; the encoder is spent."""


class _Gzip:
    __slots__ = ("_z",)

    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip wrapper

    def chunk(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes = b"") -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_FINISH)


class _Brotli:
    """``brotli`` and ``brotlicffi`` share this Compressor API."""

    __slots__ = ("_c",)

    def __init__(self, module: Any, level: int) -> None:
        self._c = module.Compressor(quality=level)

    def chunk(self, data: bytes) -> bytes:
        return bytes(self._c.process(data) + self._c.flush())

    def finish(self, data: bytes = b"") -> bytes:
        return bytes(self._c.process(data) + self._c.finish())


class _Zstandard:
    """The ``zstandard`` package."""

    __slots__ = ("_block", "_c")

    def __init__(self, module: Any, level: int) -> None:
        self._c = module.ZstdCompressor(level=level).compressobj()
        self._block = module.COMPRESSOBJ_FLUSH_BLOCK

    def chunk(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data) + self._c.flush(self._block))

    def finish(self, data: bytes = b"") -> bytes:
        return bytes(self._c.compress(data) + self._c.flush())


class _StdlibZstd:
    """Python 3.14's ``compression.zstd``."""

    __slots__ = ("_c",)

    def __init__(self, module: Any, level: int) -> None:
        self._c = module.ZstdCompressor(level=level)

    def chunk(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data, self._c.FLUSH_BLOCK))

    def finish(self, data: bytes = b"") -> bytes:
        return bytes(self._c.compress(data) + self._c.flush())


def _load(name: str, kind: Callable[[Any, int], Encoder]) -> Callable[[int], Encoder] | None:
    """``kind`` bound to the module ``name``, or None when it does not import."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    return functools.partial(kind, module)


def _encoders() -> dict[str, Callable[[int], Encoder]]:
    """The codings this process can produce, in the server's preference order."""
    found: dict[str, Callable[[int], Encoder] | None] = {
        "br": _load("brotli", _Brotli) or _load("brotlicffi", _Brotli),
        "zstd": _load("compression.zstd", _StdlibZstd) or _load("zstandard", _Zstandard),
        "gzip": _Gzip,
    }
    return {name: factory for name, factory in found.items() if factory is not None}


ENCODERS = _encoders()


def available_encodings() -> tuple[str, ...]:
    """The content codings installed, best first: ``br``, ``zstd``, ``gzip``."""
    return tuple(ENCODERS)


# -- negotiation (RFC 9110 §12.5.3) ----------------------------------------------------------
_QVALUE = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")


@functools.lru_cache(maxsize=256)
def negotiate(accept_encoding: str | None, offered: tuple[str, ...]) -> str | None:
    """The coding of ``offered`` (best first) to answer ``accept_encoding``
    with, or None for none (identity).

    No header, or an empty one, asks for no coding.  Names are
    case-insensitive, ``x-gzip`` is ``gzip`` (§8.4.1.3), ``*`` stands for
    every coding not named.  The highest q-value above 0 wins and the
    server's order breaks ties; identity wins only when listed with a
    strictly higher q-value than every coding (unlisted, it is the fallback,
    never refused: a response is always possible).  An element with a
    malformed q-value is ignored; a coding named twice gets its lower value.
    """
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for element in accept_encoding.split(","):
        name, _, params = element.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                weight = float(value) if _QVALUE.match(value) else -1.0
        if weight < 0:
            continue
        if name == "x-gzip":
            name = "gzip"
        weights[name] = min(weight, weights.get(name, weight))
    star = weights.get("*")
    identity = weights.get("identity", 0.0)  # unlisted: acceptable, but the last choice
    best, best_weight = None, 0.0
    for name in offered:
        weight = weights.get(name, 0.0 if star is None else star)
        if weight > best_weight:
            best, best_weight = name, weight
    return best if best_weight >= identity else None
