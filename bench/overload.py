"""The overload workload: open-loop load at 10x capacity, 503 latency, app calls.

wrk is closed-loop (each connection waits for its answer) and reports one
latency histogram for all statuses, so it can neither hold a rate nor say how
fast the 503s alone were.  This client sends ``rate`` requests a second on a
schedule, whatever the answers, over kept-alive HTTP/1.1 connections to the
front server (a new one when all are busy, at most ``MAX_CONNECTIONS``), and
times every response by its status.

The app (bench/app.py ``/slow``) sleeps 10 ms and appends a byte to a file
before it does; the file's growth during the run is the number of times the
application really ran, to be compared with the 200s received: a 503 that
reached the app would show as calls > 200s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from typing import Any

MAX_CONNECTIONS = 256
SLOW_SECONDS = 0.01  # bench/app.py's default for /slow
CAPACITY = 1 / SLOW_SECONDS  # requests a second, with one application thread
RATE = 10 * CAPACITY


@dataclasses.dataclass
class Tally:
    sent: int = 0
    not_sent: int = 0  # every connection busy: the schedule could not be kept
    errors: int = 0
    latencies: dict[int, list[float]] = dataclasses.field(default_factory=dict)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _one(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    request: bytes,
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    tally: Tally,
) -> None:
    reader, writer = conn
    started = time.perf_counter()
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(None, 2)[1])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await asyncio.wait_for(reader.readexactly(length), 10)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
        tally.errors += 1
        writer.close()
        return
    tally.latencies.setdefault(status, []).append((time.perf_counter() - started) * 1000)
    if close:
        writer.close()
    else:
        idle.append(conn)


async def open_loop(port: int, path: str, rate: float, seconds: float) -> Tally:
    """Send ``rate`` GET ``path`` a second for ``seconds``; wait for the answers."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    tally = Tally()
    tasks = []
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if idle:
            conn = idle.pop()
        elif len(opened) < MAX_CONNECTIONS:
            conn = await asyncio.open_connection("127.0.0.1", port)
            opened.append(conn[1])
        else:
            tally.not_sent += 1
            continue
        tally.sent += 1
        tasks.append(asyncio.ensure_future(_one(conn, request, idle, tally)))
    await asyncio.wait(tasks, timeout=15)
    for writer in opened:
        writer.close()
    return tally


def summarize(tally: Tally, app_calls: int) -> dict[str, Any]:
    """The record's fields: counts by status, latencies of 503 and 200, the proof."""
    ok = tally.latencies.get(200, [])
    rejected = tally.latencies.get(503, [])
    other = sum(len(v) for k, v in tally.latencies.items() if k not in (200, 503))
    return {
        "sent": tally.sent,
        "not_sent": tally.not_sent,
        "errors": tally.errors,
        "n_200": len(ok),
        "n_503": len(rejected),
        "n_other": other,
        "p50_503_ms": percentile(rejected, 50),
        "p99_503_ms": percentile(rejected, 99),
        "max_503_ms": max(rejected, default=None),
        "p50_200_ms": percentile(ok, 50),
        "p99_200_ms": percentile(ok, 99),
        "mean_503_ms": statistics.fmean(rejected) if rejected else None,
        "app_calls": app_calls,
        # The app ran exactly once per 200 and never for a 503.
        "app_not_called_for_503": app_calls == len(ok),
    }
