"""The worker's once-a-second duties, on the event loop (:func:`tick`).

One sweep a second is cheaper than a timer per connection.  Each tick:

* refreshes the cached ``Date`` header;
* has each driver close the connections whose deadline passed and drop those
  whose peer stopped reading (``Driver.sweep``);
* answers for every request the application has held past ``--timeout``
  (504, or a broken response), and retires the worker: a Python thread
  cannot be killed;
* sends the heartbeat and the metrics to the master, or stops when the
  master is gone; retires past ``--max-rss`` and ``--max-lifetime``;
* gives the memory a burst left back to the kernel once the worker is quiet;
* flushes the access log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from typing import TYPE_CHECKING

from ..config import MiB
from .channel import resident_bytes
from .malloc import give_back_memory
from .stats import open_fds

if TYPE_CHECKING:
    from ..accesslog import AccessLog
    from .context import ServerContext
    from .reporting import Reporter
    from .stats import WorkerStats

__all__ = ["TICK_SECONDS", "Watch"]

log = logging.getLogger("dumbwaiter")

TICK_SECONDS = 1.0


class Watch:
    """What the tick keeps from one tick to the next."""

    def __init__(
        self,
        ctx: ServerContext,
        reporter: Reporter | None,
        access_log: AccessLog | None,
        stats: WorkerStats | None,
    ) -> None:
        self.ctx = ctx
        self.reporter = reporter
        self.access_log = access_log
        self.stats = stats
        config = ctx.config
        self.timeout = config.timeout
        self.max_rss = config.max_rss * MiB
        #: When to retire for --max-lifetime (time.monotonic(); 0: never).
        self.lifetime = config.max_lifetime
        self.retire_at = 0.0
        if config.max_lifetime:
            jitter = random.uniform(0.0, config.max_lifetime_jitter)
            self.lifetime += jitter
            self.retire_at = time.monotonic() + self.lifetime
        self.status = bool(config.status)
        #: Requests served at the last tick, and when memory was last given
        #: back: both as counts of requests served.
        self.served_at_tick = 0
        self.served_at_trim = 0

    async def tick(self) -> None:
        """Run the duties once a second, until cancelled."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.once()

    def once(self) -> None:
        ctx = self.ctx
        ctx.refresh_date()
        for driver in ctx.drivers:
            driver.sweep()
        if self.timeout:
            self.expire_hung()
        self.checkup()
        self.trim_when_quiet()
        if self.access_log is not None:
            self.access_log.flush()

    def expire_hung(self) -> None:
        """Answer for every request the app has held past ``--timeout``."""
        limit = time.monotonic() - self.timeout
        for driver in self.ctx.drivers:
            for exchange in driver.in_flight():
                if 0.0 < exchange.began <= limit and not (exchange.expired or exchange.upgraded):
                    environ = exchange.request.environ
                    stuck = exchange.thread  # ("": an ASGI task, cancelled)
                    log.error(
                        "%s: %s %s still in the app after %gs: answered 504 (%s)",
                        exchange.listener,
                        environ.get("REQUEST_METHOD", ""),
                        environ.get("REQUEST_URI") or environ.get("PATH_INFO", ""),
                        self.timeout,
                        f"thread {stuck} stuck" if stuck else "its task cancelled",
                    )
                    if stuck:  # a thread cannot be stopped: the worker goes
                        self.ctx.retire(f"a request ran past --timeout {self.timeout:g}s")
                    driver.expire(exchange)

    def checkup(self) -> None:
        """The heartbeat, the memory limit and the lifetime (the request
        limit is checked as each request ends)."""
        ctx = self.ctx
        channel = ctx.channel
        max_rss = self.max_rss
        rss = resident_bytes() if channel is not None or max_rss else 0
        if channel is not None:
            if channel.orphaned:
                log.warning("the master (pid %d) is gone: stopping", channel.master_pid)
                ctx.stop("graceful")
                return
            channel.send("beat", f"{ctx.served()} {rss} {self.load()}")
            if self.stats is not None:
                self.send_stats(rss)
        if max_rss and rss > max_rss and not ctx.retiring and give_back_memory():
            rss = resident_bytes()  # what a burst left in malloc is not the worker's growth
        if max_rss and rss > max_rss and not ctx.retiring:
            ctx.retire(f"resident memory {rss // MiB} MiB is past --max-rss {max_rss // MiB}")
        if self.retire_at and time.monotonic() >= self.retire_at and not ctx.retiring:
            ctx.retire(f"it has run {self.lifetime:.0f}s (--max-lifetime)")

    def load(self) -> int:
        """Threads busy and requests queued, now (what elastic workers follow)."""
        return sum(gauges[0] + gauges[1] for gauges in (d.gauges() for d in self.ctx.drivers))

    def send_stats(self, rss: int) -> None:
        """This worker's counters and gauges, to the master (``--metrics``,
        ``--status``)."""
        ctx = self.ctx
        assert ctx.channel is not None and self.stats is not None
        queued = busy = threads = connections = 0
        for driver in ctx.drivers:
            gauges = driver.gauges()
            queued += gauges[0]
            busy += gauges[1]
            threads += gauges[2]
            connections += gauges[3]
        snapshot = self.stats.snapshot(
            queued=queued,
            busy=busy,
            threads=threads,
            connections=connections,
            rss=rss,
            fds=open_fds(),
            **(ctx.asgi.gauges() if ctx.asgi is not None else {}),
        )
        if self.status and self.reporter is not None:
            exchanges = [e for driver in ctx.drivers for e in driver.in_flight()]
            snapshot["inflight"], snapshot["inflight_more"] = self.reporter.in_flight(exchanges)
        ctx.channel.send("stats", json.dumps(snapshot, separators=(",", ":")))

    def trim_when_quiet(self) -> None:
        """After a burst, once a whole tick passed with no request owed or
        finished, give the memory the burst left back to the kernel."""
        served = self.ctx.served()
        quiet = served == self.served_at_tick and not self.ctx.owed()
        if quiet and served != self.served_at_trim:
            give_back_memory()
            self.served_at_trim = served
        self.served_at_tick = served
