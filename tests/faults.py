"""The fault tests' harness (tests/functional/test_faults.py and
test_faults_app.py): a server whose ``TMPDIR`` is a folder of its own, a
``Probe`` reading what its process holds from ``/proc``, and small helpers.

The server's ``TMPDIR`` is a folder of its own, so a spooled request body
(an anonymous temporary file) can be seen twice: as a deleted file under it
in ``/proc/<pid>/fd``, and as any file left in the folder.
"""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from serving import Server, short_tmpdir

MiB = 1 << 20


# -- the server process, seen from /proc -----------------------------------


@dataclass
class Probe:
    """What a serving process holds, read from ``/proc/<pid>`` (Linux)."""

    pid: int
    spool: str  # the process's TMPDIR

    def _status(self, key: str) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    @property
    def rss(self) -> int:
        """Resident memory now, in bytes."""
        return self._status("VmRSS") * 1024

    @property
    def threads(self) -> int:
        return self._status("Threads")

    def fds(self) -> list[str]:
        """What each open descriptor points to."""
        targets = []
        folder = f"/proc/{self.pid}/fd"
        for fd in os.listdir(folder):
            try:
                targets.append(os.readlink(f"{folder}/{fd}"))
            except FileNotFoundError:  # closed while we looked
                continue
        return targets

    def sockets(self) -> int:
        return sum(target.startswith("socket:") for target in self.fds())

    def spooled(self) -> list[str]:
        """Open temporary files: deleted files under the spool folder."""
        return [t for t in self.fds() if t.startswith(self.spool) and t.endswith("(deleted)")]

    def left_in_spool(self) -> list[str]:
        """Files left in the spool folder (there should never be any)."""
        return [os.path.join(top, name) for top, _, names in os.walk(self.spool) for name in names]


def serve(args: list[str], **kw: object) -> tuple[Server, Probe]:
    """A server whose TMPDIR is its own ``spool`` folder, once it serves, and
    a probe on its process (the one serving with ``--no-master``; under a
    master see ``test_faults_app.worker_probe``)."""
    folder = short_tmpdir()
    spool = os.path.join(folder, "spool")
    os.mkdir(spool)
    server = Server(
        [arg.replace("{dir}", folder) for arg in args],
        workdir=folder,
        env={"TMPDIR": spool},
        **kw,  # type: ignore[arg-type]
    )
    # Listening is not serving yet: wait for the pool's threads.
    if not until(lambda: "ready:" in server.log()):
        server.stop()
        raise AssertionError(f"not ready:\n{server.log()}")
    return server, Probe(server.proc.pid, spool)


def until(check: Callable[[], object], seconds: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


def marks(server: Server, name: str) -> list[str]:
    """Lines the test app wrote to ``name`` (server_apps: "closed", "calls" ...)."""
    path = server.path(name)
    return path.read_text().splitlines() if path.exists() else []


def report(what: str, **figures: object) -> None:
    shown = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    print(f"\n[faults] {what}: {shown}")


def get(port: int, path: str = "/hello", timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()
