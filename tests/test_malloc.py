"""keep_freed_memory(): glibc's malloc keeps what a request frees, so the next
request's body does not fault its pages in afresh."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dumbwaiter.server.malloc import keep_freed_memory

GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")

#: What a worker does with sixteen 1 MiB uploads in flight, ten times over:
#: the loop holds each body as four 256,000-byte reads, an application thread
#: reads it in 64 KiB pieces, then all is freed.  Prints whether malloc was
#: tuned (stderr) and the page faults of the last eight rounds (stdout).
ROUNDS = """
import resource, sys, threading
from dumbwaiter.server.malloc import keep_freed_memory
print(keep_freed_memory(), file=sys.stderr)
def read(bodies):
    for body in bodies:
        for chunk in body:
            view = memoryview(chunk)
            pieces = [bytes(view[i : i + 65536]) for i in range(0, len(chunk), 65536)]
            del pieces
def round():
    bodies = [[bytes(256000) for _ in range(4)] for _ in range(16)]
    thread = threading.Thread(target=read, args=(bodies,))
    thread.start()
    thread.join()
    del bodies
round(); round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    round()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", ROUNDS],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout), done.stderr.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds are glibc's")
def test_freed_bodies_are_reused_without_page_faults() -> None:
    tuned, set_here = faults({})
    # The operator's own malloc setting (here glibc's default) wins.
    default, left_alone = faults({"MALLOC_TOP_PAD_": str(128 * 1024)})
    assert (set_here, left_alone) == ("True", "False")
    # 8 rounds x 16 x 4 x 250 KB: about 32,000 pages if each were fresh.
    assert tuned < 1000, tuned
    assert default > 10_000, default


def test_operator_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576")
    assert keep_freed_memory() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert keep_freed_memory() is False
