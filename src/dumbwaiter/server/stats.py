"""Counters a worker keeps for ``--metrics``.

A worker counts on its event loop and in the threads serving connections
themselves (hence a lock): requests by listener,
protocol and status class, a latency and a queue-wait histogram, bytes in
and out, and requests refused with 503.  Once a second it sends a snapshot
of its cumulative counters to the master (``stats JSON`` over its
:mod:`~dumbwaiter.server.channel`), and a last one when it stops.  The
master's side, the sums and the Prometheus text, is
:mod:`dumbwaiter.process.metrics`.
"""

from __future__ import annotations

import bisect
import os
import threading
from typing import Any

__all__ = ["BUCKETS", "WorkerStats", "open_fds"]

#: Histogram bucket bounds, seconds (Prometheus client libraries' defaults).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


class WorkerStats:
    """One worker's cumulative counters."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: "listener\tprotocol\tclass" -> requests
        self.requests: dict[str, int] = {}
        self.latency = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.queue = [0] * (len(BUCKETS) + 1)
        self.queue_sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.rejected = 0

    def count(
        self,
        listener: str,
        protocol: str,
        status: int,
        request_time: float,
        queue_time: float,
        received: int,
        sent: int,
    ) -> None:
        key = f"{listener}\t{protocol}\t{status // 100}xx"
        with self.lock:
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency[bisect.bisect_left(BUCKETS, request_time)] += 1
            self.latency_sum += request_time
            self.queue[bisect.bisect_left(BUCKETS, queue_time)] += 1
            self.queue_sum += queue_time
            self.bytes_in += received
            self.bytes_out += sent
            if status == 503:
                self.rejected += 1

    def snapshot(self, **gauges: int) -> dict[str, Any]:
        """Everything, JSON-ready; ``gauges`` are the worker's current values."""
        with self.lock:  # copies: the threads may count on meanwhile
            return {
                "requests": dict(self.requests),
                "latency": list(self.latency),
                "latency_sum": self.latency_sum,
                "queue": list(self.queue),
                "queue_sum": self.queue_sum,
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
                "rejected": self.rejected,
                "gauges": gauges,
            }


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
