"""The accept turn of the default mode (server/blocking.py ``Turn``): one
owner at a time, one watcher, and the watcher takes the turn only from an
owner held up (in the app, or by a slow peer) for the given time."""

from __future__ import annotations

import threading
import time

from dumbwaiter.server.blocking import OWNER, WATCHER, Turn


def test_the_first_owns_the_second_watches_the_third_waits() -> None:
    turn = Turn()
    assert turn.enter(1, 0.01) == OWNER
    assert turn.enter(2, 0.01) == WATCHER
    started = time.monotonic()
    assert turn.enter(3, 0.05) == 0  # neither came within its timeout
    assert time.monotonic() - started >= 0.04
    turn.leave_watch()
    assert turn.enter(3, 0.01) == WATCHER


def test_an_owner_that_is_not_held_keeps_the_turn() -> None:
    turn = Turn()
    assert turn.enter(1, 0.01) == OWNER
    assert not turn.take_over(2, 0.0)
    assert turn.resume(1)
    assert turn.owner == 1


def test_the_watcher_takes_the_turn_from_an_owner_held_long_enough() -> None:
    turn = Turn()
    assert turn.enter(1, 0.01) == OWNER
    turn.hold(1)
    assert not turn.take_over(2, 10.0)  # held, but not for that long
    time.sleep(0.02)
    assert turn.take_over(2, 0.01)
    assert turn.owner == 2
    # The old owner, back from its app, finds the turn gone; its give is a no-op.
    assert not turn.resume(1)
    turn.give(1)
    assert turn.owner == 2
    # The new owner's give frees the turn for anyone.
    turn.give(2)
    assert turn.owner == 0
    assert turn.enter(3, 0.01) == OWNER


def test_a_free_turn_goes_to_the_watcher_at_once() -> None:
    turn = Turn()
    assert turn.enter(1, 0.01) == OWNER
    turn.give(1)
    assert turn.take_over(2, 10.0)
    assert turn.owner == 2


def test_the_watcher_pauses_long_unless_the_owner_is_well_into_a_hold() -> None:
    turn = Turn()
    assert turn.enter(1, 0.01) == OWNER
    # Free to accept (working through the backlog): the long pause.
    assert turn.pause(0.01, 0.5) == 0.5
    # Held only since a moment (an ordinary request): the long pause too.
    turn.hold(1)
    assert turn.pause(10.0, 0.5) == 0.5
    # Held past half of the take-over time: only until it is all passed
    # (held set by hand: no sleep to outlast on a busy machine).
    turn.held = time.monotonic() - 20.0
    assert 9.0 < turn.pause(30.0, 50.0) <= 10.0
    # Held past all of it: look again at once.
    assert turn.pause(10.0, 50.0) == 0.0
    assert turn.resume(1)
    assert turn.pause(0.01, 0.5) == 0.5


def race(turn: Turn) -> dict[str, bool]:
    """The held owner's resume against the watcher's take-over, from two
    threads at once."""
    results: dict[str, bool] = {}
    go = threading.Barrier(2)

    def resume() -> None:
        go.wait()
        results["resume"] = turn.resume(1)

    def take() -> None:
        go.wait()
        results["take"] = turn.take_over(2, 0.5)

    threads = [threading.Thread(target=resume), threading.Thread(target=take)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    return results


def test_a_resume_and_a_take_over_never_both_win() -> None:
    """Raced many times: exactly one of them owns the turn."""
    for _ in range(200):
        turn = Turn()
        assert turn.enter(1, 0.01) == OWNER
        turn.hold(1)
        turn.held -= 1.0  # held for a second already
        results = race(turn)
        assert results["resume"] != results["take"], results
        assert turn.owner == (1 if results["resume"] else 2)
