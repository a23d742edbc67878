"""The status page's parts, in-process: the history it keeps and the small
HTTP server's answers.  The master serving them (--status) is tested in
tests/functional/test_status.py."""

from __future__ import annotations

from dumbwaiter.process.admin import Response
from dumbwaiter.process.status import History


def test_history_keeps_a_rate_per_second_on_a_steady_schedule() -> None:
    history = History(size=3, step=1.0)
    assert history.due(100.0)
    history.sample(100.0, queued=0, busy=1, served=10)
    assert not history.due(100.5) and history.due(101.0)
    history.sample(101.0, queued=2, busy=3, served=30)
    history.sample(103.0, queued=0, busy=0, served=40)  # late: 10 over 2 s
    history.sample(104.0, queued=0, busy=0, served=40)
    document = history.document()
    assert document["requests"] == [20.0, 5.0, 0.0]  # only the last 3 are kept
    assert document["queued"] == [2, 0, 0] and document["busy"] == [3, 0, 0]
    # After a stall the schedule starts again from now, without a burst of samples.
    history.sample(200.0, queued=0, busy=0, served=40)
    assert not history.due(200.5) and history.due(201.0)


def test_a_head_response_has_the_length_but_no_body() -> None:
    response = Response("200 OK", "text/plain", b"hello\n")
    head = response.encode(head_only=True)
    assert b"\r\nContent-Length: 6\r\n" in head and head.endswith(b"\r\n\r\n")
    assert response.encode(head_only=False).endswith(b"\r\n\r\nhello\n")
