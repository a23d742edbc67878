"""keep_freed_memory(): glibc's malloc keeps what a request frees, so the next
request's body does not fault its pages in afresh; measured in child
processes and a real worker.  That it leaves the operator's settings alone
is in tests/unit/test_malloc.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from dumbwaiter.protocols import uwsgi
from serving import Server, connect, short_tmpdir

GLIBC = (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
#: The environment chooses malloc's settings itself: the server leaves them.
OPERATOR_MALLOC = any(name.startswith("MALLOC_") for name in os.environ) or (
    "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")
)

#: What a worker does with BODIES 1 MiB uploads in flight, ten times over:
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
    bodies = [[bytes(256000) for _ in range(4)] for _ in range(BODIES)]
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


def faults(env: dict[str, str], bodies: int = 16) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"BODIES = {bodies}\n{ROUNDS}"],
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


@pytest.mark.skipif(not GLIBC, reason="mallopt thresholds are glibc's")
@pytest.mark.skipif(OPERATOR_MALLOC, reason="the environment sets malloc's thresholds")
def test_fifty_uploads_in_flight_are_reused_too() -> None:
    """Behind a front server every upload in flight is in memory at once: a
    50 MB heap stays (a 32 MiB trim threshold gave most of it back at each
    round, about 12,000 faults a round)."""
    tuned, set_here = faults({}, bodies=50)
    assert set_here == "True"
    assert tuned < 2000, tuned


def resident(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
@pytest.mark.skipif(OPERATOR_MALLOC, reason="the environment sets malloc's thresholds")
def test_a_quiet_worker_gives_back_what_a_burst_of_uploads_left() -> None:
    folder = short_tmpdir()
    address = f"unix:{folder}/uwsgi.sock"
    body = bytes(1_000_000)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/digest", "QUERY_STRING": ""}
    request = uwsgi.encode_request(environ, body)
    # --loop-only: its loop reads the bodies ahead of the threads (in the
    # default mode, a thread reads each when it can run it: a burst waits in
    # the kernel's buffers, not in the worker's memory).
    argv = ["--uwsgi", address, "--no-master", "--threads", "2", "--loop-only"]
    with Server(argv, workdir=folder) as srv:
        before = resident(srv.proc.pid)
        # Forty uploads sent at once: the worker holds every body while its
        # two threads answer them in turn.
        socks = [connect(address) for _ in range(40)]
        senders = [threading.Thread(target=s.sendall, args=(request,)) for s in socks]
        for sender in senders:
            sender.start()
        answers = []
        for sock in socks:
            answers.append(b"".join(iter(lambda sock=sock: sock.recv(65536), b"")))
            sock.close()
        for sender in senders:
            sender.join()
        after_burst = resident(srv.proc.pid)
        assert all(b'"body_length": 1000000' in answer for answer in answers)
        # Kept for the next burst (a whole quiet tick passes before any trim;
        # how many bodies were held at once depends on the threads' pace) ...
        grown = after_burst - before
        assert grown > 10_000_000, (before, after_burst)
        # ... and most of it given back once the worker is quiet.
        deadline = time.monotonic() + 6
        while resident(srv.proc.pid) - before > grown / 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert resident(srv.proc.pid) - before < grown / 2, (
            before,
            after_burst,
            resident(srv.proc.pid),
        )
