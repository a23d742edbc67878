"""The thread pool: bound, order of work, and the scheduling policy of its threads."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from dumbwaiter.server import pool as pool_module
from dumbwaiter.server.pool import ThreadPool


def run_items(
    items: list[int], threads: int = 2, batch: bool = True
) -> list[tuple[int, int | None]]:
    """Run ``items`` through a pool; (item, its thread's policy) for each."""
    seen: list[tuple[int, int | None]] = []
    finished = threading.Semaphore(0)

    def target(item: int) -> None:
        policy = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None
        seen.append((item, policy))
        finished.release()

    pool: ThreadPool[int] = ThreadPool(threads, 8, target, batch=batch)
    pool.start()
    try:
        for item in items:
            assert pool.try_submit(item)
        for _ in items:
            assert finished.acquire(timeout=10)
    finally:
        pool.stop(timeout=5)
    return seen


def test_bound_is_threads_plus_queue() -> None:
    pool: ThreadPool[int] = ThreadPool(2, 3, lambda item: None)
    assert all(pool.try_submit(n) for n in range(5))
    assert not pool.try_submit(5)
    pool.done()
    assert pool.try_submit(5)
    assert pool.served == 1


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH here")
def test_threads_run_as_batch() -> None:
    seen = run_items([1, 2, 3])
    assert sorted(item for item, _ in seen) == [1, 2, 3]
    assert {policy for _, policy in seen} == {os.SCHED_BATCH}
    if sys.platform.startswith("linux"):
        assert os.sched_getscheduler(0) != os.SCHED_BATCH  # not the caller's thread


def test_works_when_the_policy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError("not here")

    monkeypatch.setattr(pool_module.os, "sched_setscheduler", refuse, raising=False)
    seen = run_items([1, 2])
    assert sorted(item for item, _ in seen) == [1, 2]


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="no SCHED_BATCH here")
def test_no_batch_threads_keeps_the_callers_policy() -> None:
    seen = run_items([1, 2], batch=False)
    assert {policy for _, policy in seen} == {os.sched_getscheduler(0)}
