"""What the master tells about itself: ``--metrics`` and ``--status``.

:class:`Monitor` makes the answers from the arbiter's records of its workers;
the master's small HTTP server (:mod:`~dumbwaiter.process.admin`) serves
them, from the master's own loop, so they come while every worker is busy,
stuck or being replaced.

``--metrics``
    ``/metrics`` (Prometheus text, :func:`~dumbwaiter.process.metrics.exposition`)
    and ``/healthz``.
``--status``
    The same, plus the live status page at ``/`` (one HTML page and one
    script, both in this package: no CDN, no build step, works offline) and
    what it shows as JSON at ``/status.json``: per worker its pid, age,
    requests served, busy threads and the requests in flight (method, path,
    age), and queue depth, busy threads and requests per second over the
    last ten minutes (:class:`History`).

``/healthz`` answers any method (HAProxy's check sends ``OPTIONS``): 200 and
why, or 503 and why (see :meth:`Monitor.health`).
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import time
from collections import deque
from collections.abc import Mapping
from importlib import resources
from typing import Any, Protocol

from ..config import Config
from ..version import __version__
from .admin import AdminServer, Response
from .child import Worker
from .metrics import Totals, exposition

__all__ = ["METRICS_ROUTES", "STATUS_ROUTES", "Fleet", "History", "Monitor", "page"]

#: What each kind of address serves.
METRICS_ROUTES = frozenset({"/metrics", "/healthz"})
STATUS_ROUTES = METRICS_ROUTES | {"/", "/status.json", "/status.js"}

#: The page may run only its own script and fetch only from its own address.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; "
    "style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)

#: What the status page is made of (read once, on first use).
_ASSETS: dict[str, bytes] = {}


def asset(name: str) -> bytes:
    if name not in _ASSETS:
        _ASSETS[name] = resources.files(__package__).joinpath(name).read_bytes()
    return _ASSETS[name]


def page(path: str) -> Response:
    """``/`` and ``/status.js``."""
    if path == "/status.js":
        return Response("200 OK", "text/javascript; charset=utf-8", asset("status.js"))
    return Response(
        "200 OK",
        "text/html; charset=utf-8",
        asset("status.html"),
        (("Content-Security-Policy", PAGE_POLICY), ("X-Frame-Options", "DENY")),
    )


class History:
    """The last ``size`` once-a-second samples of queue depth, busy threads
    and requests completed per second, summed over the workers."""

    def __init__(self, size: int = 600, step: float = 1.0) -> None:
        self.step = step
        self.samples: deque[tuple[float, int, int, float]] = deque(maxlen=size)
        self.next_at = 0.0
        self._last: tuple[float, int] | None = None

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def sample(self, now: float, queued: int, busy: int, served: int) -> None:
        """Record the sums at ``now`` (time.monotonic()); ``served`` is the
        running total of requests completed."""
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = round(max(0, served - self._last[1]) / (now - self._last[0]), 1)
        self._last = (now, served)
        # Keep to the schedule; after a long stall, start it again from now.
        self.next_at += self.step
        if self.next_at <= now:
            self.next_at = now + self.step
        self.samples.append((time.time(), queued, busy, rate))

    def document(self) -> dict[str, Any]:
        samples = list(self.samples)
        return {
            "step": self.step,
            "times": [round(t, 3) for t, *_ in samples],
            "queued": [s[1] for s in samples],
            "busy": [s[2] for s in samples],
            "requests": [s[3] for s in samples],
        }


class Fleet(Protocol):
    """What :class:`Monitor` reads of the arbiter, never writes."""

    @property
    def workers(self) -> Mapping[int, Worker]: ...
    @property
    def stopping(self) -> str: ...
    @property
    def target(self) -> int: ...
    @property
    def serving_generation(self) -> int: ...


class Monitor:
    """The answers on the ``--metrics`` and ``--status`` addresses, made from
    ``fleet``'s records of its workers; ``sockets`` (kind -> listening
    socket, the caller's) are served once :meth:`start` is called."""

    def __init__(
        self, config: Config, fleet: Fleet, listeners: list[str], sockets: dict[str, socket.socket]
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.listeners = listeners
        self.sockets = sockets
        self.server: AdminServer | None = None
        self.totals = Totals()
        self.history = History()
        #: Requests completed by workers that have ended.
        self.served_before = 0
        #: The last change of the worker count: when (time.time()), and why.
        self.last_resize: tuple[float, str] | None = None
        self.started_at = time.time()
        self.pid = os.getpid()

    def start(self, selector: selectors.BaseSelector) -> None:
        if self.sockets:
            routes = {"metrics": METRICS_ROUTES, "status": STATUS_ROUTES}
            served = [(sock, routes[kind]) for kind, sock in self.sockets.items()]
            self.server = AdminServer(selector, served, self.respond)

    def owns(self, data: object) -> bool:
        return self.server is not None and self.server.owns(data)

    def handle(self, data: object, mask: int) -> None:
        assert self.server is not None
        self.server.handle(data, mask)

    def tick(self, now: float) -> None:
        """Drop admin connections past their deadline, and once a second take
        a sample of the workers' sums for the status page."""
        if self.server is None:
            return
        self.server.expire(now)
        if not self.history.due(now):
            return
        queued = busy = 0
        for worker in self.fleet.workers.values():
            gauges = (worker.stats or {}).get("gauges", {})
            queued += gauges.get("queued", 0)
            busy += gauges.get("busy", 0)
        self.history.sample(now, queued, busy, self.served())

    def worker_ended(self, worker: Worker) -> None:
        """Keep what an ended ``worker`` counted in the running totals."""
        self.totals.worker_ended(worker.stats)
        self.served_before += worker.served

    def restarted(self, reason: str) -> None:
        self.totals.restarted(reason)

    def resized(self, why: str) -> None:
        """The worker count changed (TTIN, TTOU, a reload, elastic workers)."""
        self.last_resize = (time.time(), why)

    def close(self) -> None:
        """Stop serving (the sockets stay open: they are the caller's)."""
        if self.server is not None:
            self.server.close()

    def forget(self) -> None:
        """In a forked worker: close our copies of the sockets and connections."""
        for sock in self.sockets.values():
            sock.close()
        if self.server is not None:
            self.server.forget()

    def respond(self, path: str) -> Response:
        """The answer for ``path`` on a --metrics or --status address (the
        server has checked that the address serves it)."""
        if path == "/healthz":
            healthy, reason = self.health()
            status = "200 OK" if healthy else "503 Service Unavailable"
            return Response(status, "text/plain; charset=utf-8", reason.encode() + b"\n")
        if path == "/metrics":
            workers = self.fleet.workers.values()
            live = {w.pid: w.stats for w in workers if w.stats}
            running = sum(1 for w in workers if not w.stop_sent)
            body = exposition(self.totals, live, running, self.fleet.target).encode()
            return Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        if path == "/status.json":
            body = json.dumps(self.document(), separators=(",", ":")).encode()
            return Response("200 OK", "application/json", body)
        return page(path)

    def served(self) -> int:
        """Requests completed by every worker that ever ran."""
        return self.served_before + sum(w.served for w in self.fleet.workers.values())

    def health(self) -> tuple[bool, str]:
        """``/healthz``: serving, or why not (draining, no worker ready, every
        thread busy for ``--health-busy`` seconds): a balancer's cue to
        send the traffic elsewhere for now."""
        if self.fleet.stopping:
            return False, "draining"
        serving = [w for w in self.fleet.workers.values() if w.ready and not w.stop_sent]
        if not serving:
            return False, "no worker ready"
        now = time.monotonic()
        limit = self.config.health_busy
        if all(w.busy_since and now - w.busy_since >= limit for w in serving):
            return False, f"every thread busy for {limit:g}s"
        gauges = [(w.stats or {}).get("gauges", {}) for w in serving]
        if any("asgi" in g for g in gauges):  # an ASGI app's: what is in flight
            requests = sum(g.get("asgi", 0) for g in gauges)
            sockets = sum(g.get("websockets", 0) for g in gauges)
            return True, (
                f"serving: {len(serving)} worker(s), {requests} ASGI request(s) "
                f"and {sockets} WebSocket(s) in flight"
            )
        return True, f"serving: {len(serving)} worker(s)"

    def document(self) -> dict[str, Any]:
        """What the status page shows (``/status.json``)."""
        now = time.monotonic()
        healthy, reason = self.health()
        workers = sorted(self.fleet.workers.values(), key=lambda w: w.born)
        total = self.totals.total(w.stats for w in workers if w.stats)
        return {
            "version": __version__,
            "pid": self.pid,
            "started": round(self.started_at, 3),
            "now": round(time.time(), 3),
            "health": {"ok": healthy, "reason": reason},
            "generation": self.fleet.serving_generation,
            "target": self.fleet.target,
            "scaling": self.scaling(),
            "listeners": self.listeners,
            "threads": self.config.threads,
            "queue_size": self.config.queue_size,
            "totals": {
                "requests": self.served(),
                "rejected": total["rejected"],
                "bytes_in": total["bytes_in"],
                "bytes_out": total["bytes_out"],
                "restarts": dict(self.totals.restarts),
            },
            "workers": [self._worker(worker, now) for worker in workers],
            "history": self.history.document(),
        }

    def scaling(self) -> dict[str, Any]:
        """The worker count's bounds, and its last change."""
        config = self.config
        at, why = self.last_resize or (0.0, "")
        return {
            "min": config.workers,
            "max": config.max_workers or config.workers,
            "changed": round(at, 3),
            "why": why,
        }

    def _worker(self, worker: Worker, now: float) -> dict[str, Any]:
        stats = worker.stats or {}
        gauges = stats.get("gauges", {})
        return {
            "pid": worker.pid,
            "generation": worker.generation,
            "state": worker.state,
            "reason": worker.retiring,
            "age": round(now - worker.born, 1),
            "served": worker.served,
            "rss": worker.rss,
            "threads": gauges.get("threads", self.config.threads),
            "busy": gauges.get("busy", 0),
            "queued": gauges.get("queued", 0),
            "connections": gauges.get("connections", 0),
            "asgi": gauges.get("asgi"),  # (None: a WSGI app's worker)
            "websockets": gauges.get("websockets", 0),
            "fds": gauges.get("fds", 0),
            "inflight": stats.get("inflight", []),
            "inflight_more": stats.get("inflight_more", 0),
        }
