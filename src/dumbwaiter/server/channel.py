"""What a worker tells its master, over a pipe the master made for it.

One line per message (a full pipe keeps the rest for the next send):

``ready``
    The listeners are served and the thread pool runs.
``beat SERVED RSS``
    Once a second: requests completed so far, resident memory in bytes.
    A worker that stops beating is stuck (its event loop is blocked) and the
    master kills it.
``retire REASON``
    The worker should be replaced (``--max-requests``, ``--max-rss``, a
    request past ``--timeout``).  It goes on serving until the master has its
    replacement ready and sends SIGTERM.
``stats JSON``
    With ``--metrics`` or ``--status``, once a second and when it stops: its
    cumulative counters and gauges (:mod:`dumbwaiter.server.stats`); with
    ``--status`` also its oldest requests in flight.
``failed MESSAGE``
    The worker could not start (the app did not load); it exits next.

The worker's end is non-blocking: a master that does not read never stalls a
worker's event loop (a lost beat is only a late one).
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["WorkerChannel", "parse", "resident_bytes"]

#: Bytes a worker keeps for a master that is not reading.
MAX_PENDING = 1 << 20


class WorkerChannel:
    """The worker's end: the write side of its pipe, and the master's pid."""

    def __init__(self, fd: int, master_pid: int) -> None:
        self.fd = fd
        self.master_pid = master_pid
        #: What a full pipe did not take yet: sent first next time, so a
        #: line is never torn nor reordered.
        self._pending = b""
        os.set_blocking(fd, False)

    def send(self, kind: str, text: str = "") -> bool:
        """Send one message; False if the master cannot hear it."""
        line = f"{kind} {text}".rstrip().replace("\n", " ") + "\n"
        data = self._pending + line.encode("utf-8", "replace")
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            written = 0  # the master is behind; it is still there
        except OSError:
            return False
        self._pending = data[written:]
        if len(self._pending) > MAX_PENDING:  # a master that never reads
            self._pending = b""
        return True

    @property
    def orphaned(self) -> bool:
        """True once the master is gone (we were re-parented)."""
        return os.getppid() != self.master_pid

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def parse(buffer: bytearray) -> list[tuple[str, str]]:
    """Take the complete lines out of ``buffer`` as ``(kind, text)`` pairs;
    a partial line stays for the next read."""
    end = buffer.rfind(b"\n") + 1
    if not end:
        return []
    lines = bytes(buffer[:end]).decode("utf-8", "replace").splitlines()
    del buffer[:end]
    messages = []
    for line in lines:
        kind, _, text = line.partition(" ")
        if kind:
            messages.append((kind, text))
    return messages


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``), else its peak."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
