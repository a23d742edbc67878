"""A small, bounded load generator for the process tests.

A few threads send GET requests back to back to a front server (each thread
keeps its own client connection alive, and opens a new one only after the
front closed it or a request failed), check each answer, and record it.  The
load ends hard after ``seconds`` or ``max_requests``, whichever comes first;
:meth:`Load.stop` ends it sooner.

An answer is good when its status is 200 and its body is ``VERSION PID``
(the versioned test app of ``test_processes.py``); anything else, including
a connection error, is a failure, kept with the time its request was sent.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """A good answer: when its request was sent and answered (monotonic
    seconds), and the app's version and pid it names."""

    sent: float
    done: float
    version: str
    pid: int


@dataclass(frozen=True)
class Failure:
    sent: float
    done: float
    what: str


class Load:
    """``threads`` clients of ``127.0.0.1:port`` asking for ``path`` (use as a
    context manager; leaving it stops the load and joins the threads)."""

    def __init__(
        self,
        port: int,
        path: str = "/",
        *,
        threads: int = 4,
        seconds: float = 20.0,
        max_requests: int = 500_000,
        timeout: float = 10.0,
    ) -> None:
        self.port = port
        self.path = path
        self.seconds = seconds
        self.max_requests = max_requests
        self.timeout = timeout
        self.answers: list[Answer] = []
        self.failures: list[Failure] = []
        self._lock = threading.Lock()
        self._sent = 0
        self._stop = threading.Event()
        self.started = time.monotonic()
        self._deadline = self.started + seconds
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def requests(self) -> int:
        return len(self.answers) + len(self.failures)

    def _claim(self) -> bool:
        """Whether one more request may be sent."""
        with self._lock:
            if self._stop.is_set() or time.monotonic() >= self._deadline:
                return False
            if self._sent >= self.max_requests:
                return False
            self._sent += 1
            return True

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while self._claim():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            sent = time.monotonic()
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._record(Failure(sent, time.monotonic(), repr(exc)))
                conn.close()
                conn = None
                continue
            self._record(check(sent, response.status, body))
            if response.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def _record(self, result: Answer | Failure) -> None:
        with self._lock:
            if isinstance(result, Answer):
                self.answers.append(result)
            else:
                self.failures.append(result)

    def wait(self) -> None:
        """Until the load has run its course (``seconds`` or ``max_requests``)."""
        for thread in self._threads:
            thread.join(self.seconds + self.timeout + 5)
        assert not any(thread.is_alive() for thread in self._threads), "the load did not end"

    def stop(self) -> None:
        self._stop.set()
        self.wait()

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened ------------------------------------------------------
    def versions(self) -> set[str]:
        return {answer.version for answer in self.answers}

    def pids(self) -> set[int]:
        return {answer.pid for answer in self.answers}

    def summary(self) -> str:
        elapsed = max([a.done for a in self.answers] + [self.started]) - self.started
        rate = self.requests / elapsed if elapsed else 0.0
        return (
            f"{self.requests} requests in {elapsed:.1f}s ({rate:.0f}/s) from "
            f"{len(self._threads)} threads, {len(self.failures)} failed"
        )


def check(sent: float, status: int, body: bytes) -> Answer | Failure:
    done = time.monotonic()
    parts = body.split()
    if status != 200 or len(parts) != 2 or not parts[1].isdigit():
        return Failure(sent, done, f"{status} {body[:200]!r}")
    return Answer(sent, done, parts[0].decode(), int(parts[1]))
