"""Helpers shared by the sans-IO protocol tests (tests/unit/protocols)."""

from __future__ import annotations

from dumbwaiter.protocols import BodyReceived, Event, FilterDataReceived


def merge(events: list[Event]) -> list[Event]:
    """Join consecutive input pieces so that different feedings compare equal;
    every piece as bytes (the protocol may hand over views)."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if isinstance(event, BodyReceived | FilterDataReceived):
            if isinstance(last, type(event)) and last.stream_id == event.stream_id:
                merged[-1] = type(event)(event.stream_id, bytes(last.data) + bytes(event.data))
                continue
            event = type(event)(event.stream_id, bytes(event.data))
        merged.append(event)
    return merged
