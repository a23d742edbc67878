"""The master's side of ``--metrics``: sums over the workers, and the
Prometheus text format.

Each worker sends a snapshot of its cumulative counters once a second
(:class:`~dumbwaiter.server.stats.WorkerStats`).  :class:`Totals` keeps the
last snapshot of every worker that ended in a running total, so a counter
reported here is the sum over every worker that ever ran and never goes
backwards across a reload or a recycled worker.  :func:`exposition` writes
the Prometheus text format (version 0.0.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..server.stats import BUCKETS

__all__ = ["Totals", "exposition"]

COUNTERS = ("latency_sum", "queue_sum", "bytes_in", "bytes_out", "rejected")


class Totals:
    """The master's sums over every worker that ever ran."""

    def __init__(self) -> None:
        self.ended = _empty()
        #: Why workers were replaced: reason -> count.
        self.restarts: dict[str, int] = {}

    def worker_ended(self, snapshot: Mapping[str, Any] | None) -> None:
        if snapshot:
            _add(self.ended, snapshot)

    def restarted(self, reason: str) -> None:
        self.restarts[reason] = self.restarts.get(reason, 0) + 1

    def total(self, live: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        total = _empty()
        _add(total, self.ended)
        for snapshot in live:
            _add(total, snapshot)
        return total


def _empty() -> dict[str, Any]:
    empty: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    empty.update(requests={}, latency=[0] * (len(BUCKETS) + 1), queue=[0] * (len(BUCKETS) + 1))
    return empty


def _add(into: dict[str, Any], snapshot: Mapping[str, Any]) -> None:
    for name in COUNTERS:
        into[name] += snapshot.get(name, 0)
    for key, count in snapshot.get("requests", {}).items():
        into["requests"][key] = into["requests"].get(key, 0) + count
    for name in ("latency", "queue"):
        for i, count in enumerate(snapshot.get(name, [])[: len(BUCKETS) + 1]):
            into[name][i] += count


def exposition(
    totals: Totals, live: Mapping[int, Mapping[str, Any]], workers: int, target: int = 0
) -> str:
    """The Prometheus text format for ``live`` (pid -> last snapshot)."""
    total = totals.total(live.values())
    out: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")

    family(
        "dumbwaiter_requests_total",
        "counter",
        "Responses, by listener, gateway protocol and status class.",
    )
    for key, count in sorted(total["requests"].items()):
        listener, protocol, status = key.split("\t")
        labels = _labels(listener=listener, protocol=protocol, status=status)
        out.append(f"dumbwaiter_requests_total{labels} {count}\n")
    for name, field, text in (
        ("dumbwaiter_request_duration_seconds", "latency", "From a request's head to its end."),
        ("dumbwaiter_queue_wait_seconds", "queue", "Time a request waited for a thread."),
    ):
        family(name, "histogram", text)
        cumulative = 0
        for bound, count in zip((*BUCKETS, "+Inf"), total[field], strict=True):
            cumulative += count
            out.append(f'{name}_bucket{{le="{bound}"}} {cumulative}\n')
        out.append(f"{name}_sum {total[field + '_sum']}\n{name}_count {cumulative}\n")
    for name, field, text in (
        ("dumbwaiter_rejected_total", "rejected", "Requests answered 503 at once (no thread)."),
        ("dumbwaiter_received_bytes_total", "bytes_in", "Request body bytes received."),
        ("dumbwaiter_sent_bytes_total", "bytes_out", "Response body bytes sent."),
    ):
        family(name, "counter", text)
        out.append(f"{name} {total[field]}\n")
    family("dumbwaiter_worker_restarts_total", "counter", "Workers replaced, by reason.")
    for reason, count in sorted(totals.restarts.items()):
        out.append(f"dumbwaiter_worker_restarts_total{_labels(reason=reason)} {count}\n")
    family("dumbwaiter_workers", "gauge", "Worker processes running.")
    out.append(f"dumbwaiter_workers {workers}\n")
    family("dumbwaiter_workers_target", "gauge", "Worker processes the master aims at.")
    out.append(f"dumbwaiter_workers_target {target or workers}\n")
    for name, gauge, text in (
        ("dumbwaiter_queue_depth", "queued", "Requests waiting for a thread, per worker."),
        ("dumbwaiter_busy_threads", "busy", "Threads running the app, per worker."),
        ("dumbwaiter_connections", "connections", "Open connections, per worker."),
        ("dumbwaiter_asgi_requests", "asgi", "ASGI requests in the app, per worker."),
        ("dumbwaiter_websockets", "websockets", "Open WebSocket connections, per worker."),
        ("dumbwaiter_worker_resident_bytes", "rss", "Resident memory, per worker."),
        ("dumbwaiter_worker_open_fds", "fds", "Open file descriptors, per worker."),
    ):
        family(name, "gauge", text)
        for pid, snapshot in sorted(live.items()):
            value = snapshot.get("gauges", {}).get(gauge, 0)
            out.append(f"{name}{_labels(worker=str(pid))} {value}\n")
    return "".join(out)


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"
