"""The WSGI application every Python target serves (bench/cfcgi.c mimics it).

Copied into the run's directory as ``benchapp`` so that every server imports
the same file.  The route is the last segment of the path, so it does not
matter how a front server splits SCRIPT_NAME and PATH_INFO:

- ``/hello``: 12 bytes, ``Hello world\\n``
- ``/big``: 122880 bytes, ``0123456789abcdef`` repeated
- ``/upload``: reads the whole body, answers its length in decimal
- ``/slow``: sleeps ``BENCH_SLOW_SECONDS`` (default 0.01), answers ``slow\\n``;
  each call appends one byte to the file ``BENCH_COUNT_FILE`` first, so the
  harness can count how often the application really ran.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

HELLO = b"Hello world\n"
BIG = b"0123456789abcdef" * 7680
SLOW = b"slow\n"
SLOW_SECONDS = float(os.environ.get("BENCH_SLOW_SECONDS", "0.01"))
_COUNT_FILE = os.environ.get("BENCH_COUNT_FILE")
_count_fd = os.open(_COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if _COUNT_FILE else -1

StartResponse = Callable[..., Any]


def _answer(start_response: StartResponse, body: bytes, status: str = "200 OK") -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    route = (path or environ.get("REQUEST_URI", "")).partition("?")[0].rpartition("/")[2]
    if route == "hello":
        return _answer(start_response, HELLO)
    if route == "big":
        return _answer(start_response, BIG)
    if route == "upload":
        stream = environ["wsgi.input"]
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        while remaining > 0:
            chunk = stream.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
        received = int(environ.get("CONTENT_LENGTH") or 0) - remaining
        return _answer(start_response, str(received).encode())
    if route == "slow":
        if _count_fd >= 0:
            os.write(_count_fd, b".")
        time.sleep(SLOW_SECONDS)
        return _answer(start_response, SLOW)
    return _answer(start_response, b"not found\n", "404 Not Found")
