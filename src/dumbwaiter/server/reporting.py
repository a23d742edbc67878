"""What a worker reports of each response: the access log line and the metrics.

One :class:`Reporter` per worker, made only when something is reported
(``--access-log``, ``--metrics``, ``--status``).  Sessions call
:meth:`Reporter.report` once per response, from the thread that owns the
connection: the event loop's, or an application thread serving it directly;
the access log and the counters take their own locks.  :meth:`in_flight`
describes the requests in flight for ``--status``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from .exchange import ExchangeBase

if TYPE_CHECKING:
    from ..accesslog import AccessLog
    from .stats import WorkerStats

__all__ = ["Reporter"]

#: --status: requests in flight a worker reports (the oldest), and the
#: characters of each one's path.
INFLIGHT_SHOWN: Final = 50
INFLIGHT_PATH: Final = 200


class Reporter:
    """The access log and the metrics of one worker (either may be off)."""

    def __init__(self, access_log: AccessLog | None, stats: WorkerStats | None) -> None:
        self.access_log = access_log
        self.stats = stats

    def report(self, exchange: ExchangeBase, gateway: str) -> None:
        """Report a response once: its status (499 when the client went
        first, 500 when none was sent), bytes, and times."""
        request = exchange.request
        code = exchange.status[:3]
        status = int(code) if code.isdigit() else 499 if exchange.cancelled else 500
        request_time = time.monotonic() - request.arrived if request.arrived else 0.0
        queue_time = max(0.0, exchange.began - exchange.queued) if exchange.began else 0.0
        if self.access_log is not None:
            self.access_log.write(
                request.environ,
                status,
                exchange.sent,
                listener=exchange.listener,
                gateway=gateway,
                connection=exchange.peer.get("dumbwaiter.connection", ""),
                request_time=request_time,
                queue_time=queue_time,
            )
        if self.stats is not None:
            self.stats.count(
                exchange.listener,
                gateway,
                status,
                request_time,
                queue_time,
                request.length,
                exchange.sent,
            )

    @staticmethod
    def in_flight(exchanges: Iterable[ExchangeBase]) -> tuple[list[dict[str, Any]], int]:
        """For ``--status``: the oldest requests in flight (method, path
        without the query, client, listener, seconds since dispatch, queued
        or in the app), and how many more there are."""
        now = time.monotonic()
        found: list[dict[str, Any]] = []
        for exchange in exchanges:
            environ = exchange.request.environ
            path = environ.get("REQUEST_URI") or (
                environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            )
            found.append(
                {
                    "method": environ.get("REQUEST_METHOD", "")[:16],
                    "path": path.partition("?")[0][:INFLIGHT_PATH],
                    "client": environ.get("REMOTE_ADDR", ""),
                    "listener": exchange.listener,
                    "age": round(now - exchange.queued, 3) if exchange.queued else 0.0,
                    "state": "websocket"
                    if exchange.upgraded
                    else "app"
                    if exchange.began
                    else "queued",
                }
            )
        found.sort(key=lambda item: -item["age"])
        return found[:INFLIGHT_SHOWN], max(0, len(found) - INFLIGHT_SHOWN)
