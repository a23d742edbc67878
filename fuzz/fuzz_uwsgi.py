"""Fuzz target: the uwsgi server parser (see ``oneshot_target.py`` for the
input layout and the properties checked).

Run: ``python fuzz/fuzz_uwsgi.py --runs 1000000`` (see fuzz/README.md).
"""

from __future__ import annotations

import sys
from collections.abc import Hashable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

with harness.instrumented(__name__ == "__main__"):
    import oneshot_target

    from dumbwaiter.protocols.uwsgi import UwsgiServerProtocol, encode_request


def one_input(data: bytes) -> Hashable:
    return oneshot_target.one_input(UwsgiServerProtocol, encode_request, data, scgi=False)


def seeds() -> Iterator[bytes]:
    environs = [
        {},
        {"REQUEST_METHOD": "POST", "REQUEST_URI": "/a?b=1", "QUERY_STRING": "b=1"},
        {"HTTP_X": "\xe9\xff", "EMPTY": "", "N" * 200: "v" * 300},
    ]
    for i, environ in enumerate(environs):
        for j, body in enumerate([b"", b"hello", bytes(range(256))]):
            yield bytes([(i + j) % 5, 40, i, j]) + encode_request(environ, body)
            fields = {"CONTENT_LENGTH": str(len(body)), **environ}
            head = "\0".join(f"{k}\0{v}" for k, v in fields.items()).encode("latin-1")
            yield bytes([8 | (i + j) % 5, 40, i, j]) + head + b"\0\0\0" + body
    yield b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"


if __name__ == "__main__":
    harness.main("uwsgi", one_input, seeds, oneshot_target.TOKENS, max_len=8192)
