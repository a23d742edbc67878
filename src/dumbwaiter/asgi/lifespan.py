"""The ASGI lifespan protocol for one worker: ``startup`` before it serves,
``shutdown`` when it stops, ``state`` copied into each request's scope."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .detect import ASGIApp, Message

__all__ = ["Lifespan", "LifespanFailed"]

log = logging.getLogger("dumbwaiter")


class LifespanFailed(Exception):
    """The application's lifespan startup failed; the message says why."""


class Lifespan:
    """The lifespan protocol for one worker: ``startup`` before it serves,
    ``shutdown`` when it stops.  ``mode``: ``on`` (an app that does not
    speak it fails the start), ``auto`` (it is served without, logged once),
    ``off``."""

    def __init__(self, app: ASGIApp, mode: str, timeout: float) -> None:
        self.app = app
        self.mode = mode
        self.timeout = timeout
        self.state: dict[str, Any] = {}
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.supported = mode != "off"

    async def startup(self) -> None:
        """Raises :class:`LifespanFailed` (the app's message)."""
        if not self.supported:
            return
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self.task = asyncio.get_running_loop().create_task(self.main(scope))
        answer = await self.ask("lifespan.startup")
        if answer is None:
            return
        if answer["type"] == "lifespan.startup.failed":
            raise LifespanFailed(f"lifespan startup failed: {answer.get('message', '')}")

    async def main(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception as exc:
            await self.outbox.put({"type": "dumbwaiter.raised", "exc": exc})
        else:
            await self.outbox.put({"type": "dumbwaiter.returned"})

    async def ask(self, kind: str) -> Message | None:
        """Send ``kind``, and wait for the app's answer; None when it does
        not speak lifespan (``auto``)."""
        await self.inbox.put({"type": kind})
        try:
            answer = await asyncio.wait_for(self.outbox.get(), self.timeout)
        except asyncio.TimeoutError:
            raise LifespanFailed(f"{kind}: no answer within {self.timeout:g}s") from None
        if answer["type"] in ("dumbwaiter.raised", "dumbwaiter.returned"):
            self.supported = False
            if self.mode == "on" or kind == "lifespan.shutdown":
                exc = answer.get("exc")
                raise LifespanFailed(
                    f"{kind}: the application {'raised ' + repr(exc) if exc else 'returned'}"
                )
            log.info("the application does not speak ASGI lifespan: served without it")
            return None
        return answer

    async def shutdown(self) -> None:
        """Tell the app; a failure is logged (the worker stops anyway)."""
        if not self.supported or self.task is None:
            return
        try:
            answer = await self.ask("lifespan.shutdown")
            if answer is not None and answer["type"] == "lifespan.shutdown.failed":
                log.error("lifespan shutdown failed: %s", answer.get("message", ""))
        except LifespanFailed as exc:
            log.error("%s", exc)
        self.task.cancel()
