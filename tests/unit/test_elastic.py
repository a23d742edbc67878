"""Elastic workers' policy (process/elastic.py), without processes: up after
2 s saturated, down after --workers-idle with the load fitting in one worker
fewer, one at a time, STEP apart, between MIN and MAX."""

from __future__ import annotations

import pytest

from dumbwaiter.cli import config_from_args
from dumbwaiter.config import ConfigError
from dumbwaiter.process.child import Worker
from dumbwaiter.process.elastic import STEP, UP_AFTER, Elastic, elastic_for


def workers(*loads: int, ready: bool = True) -> list[Worker]:
    return [Worker(n, -1, 1, 0.0, ready=ready, load=load) for n, load in enumerate(loads)]


def test_saturated_for_two_seconds_adds_one_up_to_the_maximum() -> None:
    policy = Elastic(1, 3, idle_after=30.0, threads=4)
    assert policy.decide(100.0, workers(4), 1) is None  # saturated from now
    assert policy.decide(100.0 + UP_AFTER - 0.1, workers(4), 1) is None
    change = policy.decide(100.0 + UP_AFTER, workers(5), 1)
    assert change is not None and change[0] == 2 and "busy" in change[1]
    # The new worker is not ready yet: nothing moves, and the clock restarts.
    assert policy.decide(103.0, workers(4, 0, ready=False)[:1], 2) is None
    assert policy.decide(110.0, workers(4, 4), 2) is None  # saturated again from now
    assert policy.decide(112.0, workers(4, 4), 2) == (3, policy.why)
    assert policy.decide(200.0, workers(4, 4, 4), 3) is None
    assert policy.decide(210.0, workers(4, 4, 4), 3) is None  # the maximum


def test_below_saturation_nothing_moves() -> None:
    policy = Elastic(1, 4, idle_after=5.0, threads=4)
    for second in range(100):
        assert policy.decide(float(second), workers(3, 3), 2) is None  # 75%: neither


def test_idle_long_enough_retires_one_down_to_the_minimum() -> None:
    policy = Elastic(2, 4, idle_after=10.0, threads=4)
    assert policy.decide(100.0, workers(1, 1, 2), 3) is None  # 4 <= half of 2 workers' 8
    assert policy.decide(109.0, workers(1, 1, 2), 3) is None
    assert policy.decide(110.0, workers(1, 1, 2), 3) == (2, policy.why)
    assert "fitted in 2 worker(s)" in policy.why
    assert policy.decide(110.0 + STEP + 20, workers(0, 0), 2) is None  # the minimum


def test_a_busy_moment_resets_the_idle_clock() -> None:
    policy = Elastic(1, 4, idle_after=10.0, threads=4)
    assert policy.decide(100.0, workers(0, 0), 2) is None
    assert policy.decide(105.0, workers(4, 3), 2) is None
    assert policy.decide(112.0, workers(0, 0), 2) is None
    assert policy.decide(121.0, workers(0, 0), 2) is None
    assert policy.decide(122.0, workers(0, 0), 2) == (1, policy.why)


def test_two_changes_are_step_apart() -> None:
    policy = Elastic(1, 5, idle_after=30.0, threads=1)
    policy.decide(0.0, workers(1), 1)
    assert policy.decide(UP_AFTER, workers(1), 1) is not None
    policy.decide(UP_AFTER + 0.5, workers(1, 1), 2)
    assert policy.decide(UP_AFTER + STEP - 0.1, workers(1, 1), 2) is None
    assert policy.decide(UP_AFTER + STEP, workers(1, 1), 2) is not None


def test_min_max_on_the_command_line_and_in_the_file() -> None:
    _, config = config_from_args(["--workers", "2:6", "--workers-idle", "5", "m:app"])
    assert (config.workers, config.max_workers, config.workers_idle) == (2, 6, 5.0)
    policy = elastic_for(config)
    assert policy is not None and (policy.minimum, policy.maximum) == (2, 6)
    _, fixed = config_from_args(["--workers", "3", "m:app"])
    assert (fixed.workers, fixed.max_workers, elastic_for(fixed)) == (3, 0, None)
    with pytest.raises(ConfigError, match="--max-workers 2 is under --workers 4"):
        config_from_args(["--workers", "4:2", "m:app"])
    with pytest.raises(ConfigError, match="not a number of workers: '2:x'"):
        config_from_args(["--workers", "2:x", "m:app"])
