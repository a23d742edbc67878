"""What a worker's end means (process/deaths.py), without processes."""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass

from dumbwaiter.process.child import Worker
from dumbwaiter.process.deaths import (
    ABANDON_RELOAD,
    ENDED,
    FAIL,
    MAX_START_FAILURES,
    QUICK_DEATH_SECONDS,
    REPLACE,
    RETRY,
    judge,
)


@dataclass
class Master:
    stopping: str = ""
    started: bool = True
    serving_generation: int = 1
    failures: int = 0


def worker(generation: int = 1, ready: bool = True, born: float = 0.0, **kw: object) -> Worker:
    w = Worker(7, -1, generation, born=born, ready=ready)
    for name, value in kw.items():
        setattr(w, name, value)
    return w


def test_asked_to_stop_it_just_ended() -> None:
    verdict = judge(worker(stop_signal=signal.SIGTERM), "exit status 0", 100.0, Master())
    assert (verdict.action, verdict.level) == (ENDED, logging.DEBUG)
    verdict = judge(worker(stop_signal=signal.SIGKILL), "signal SIGKILL", 100.0, Master())
    assert (verdict.action, verdict.level) == (ENDED, logging.INFO)
    assert judge(worker(), "exit status 0", 1.0, Master(stopping="graceful")).action == ENDED


def test_a_death_after_serving_a_while_is_replaced() -> None:
    verdict = judge(worker(), "signal SIGKILL", QUICK_DEATH_SECONDS + 1, Master())
    assert verdict.action == REPLACE
    assert verdict.reason == "worker 7 died (signal SIGKILL); replacing it"


def test_a_quick_death_backs_off_then_ends_the_master() -> None:
    verdict = judge(worker(ready=False), "exit status 1", 1.0, Master(failures=0))
    assert (verdict.action, verdict.delay) == (RETRY, 0.1)
    assert (
        verdict.reason == "worker 7 ended before it was ready (exit status 1); next worker in 0.1s"
    )
    assert judge(worker(ready=False), "x", 1.0, Master(failures=2)).delay == 0.4
    verdict = judge(worker(ready=False), "x", 1.0, Master(failures=MAX_START_FAILURES - 1))
    assert verdict.action == FAIL
    assert verdict.reason.startswith(
        f"workers keep failing to start ({MAX_START_FAILURES} in a row)"
    )


def test_a_new_generation_failing_abandons_the_reload() -> None:
    failed = worker(generation=2, ready=False, failed="SyntaxError: bad")
    verdict = judge(failed, "exit status 3", 1.0, Master(serving_generation=1))
    assert (verdict.action, verdict.reason) == (ABANDON_RELOAD, "SyntaxError: bad")


def test_the_apps_error_at_start_up_ends_the_master_with_it() -> None:
    failed = worker(ready=False, failed="cannot import module 'x'")
    verdict = judge(failed, "exit status 3", 1.0, Master(started=False, serving_generation=0))
    assert (verdict.action, verdict.reason) == (FAIL, "cannot import module 'x'")
