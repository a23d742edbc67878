"""Which interface an application speaks: WSGI, ASGI 3, or ASGI 2."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["INTERFACES", "ASGIApp", "asgi3", "interface_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application: ``await app(scope, receive, send)``.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: ``--interface``'s values.
INTERFACES = ("auto", "wsgi", "asgi", "asgi2")


def interface_of(app: object, asked: str = "auto") -> str:
    """``"wsgi"``, ``"asgi"`` or ``"asgi2"``: ``asked``, or for ``auto``
    what ``app`` is: a coroutine function, or an object whose ``__call__``
    is one, is ASGI 3 (Starlette, FastAPI, Quart, Litestar, Django's
    ``get_asgi_application()``); anything else WSGI.  An ASGI 2 double
    callable looks like a WSGI one: it needs ``--interface asgi2``."""
    if asked != "auto":
        return asked
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = getattr(type(app), "__call__", None)  # noqa: B004 - the class's, not the instance's
    if call is not None and (
        inspect.iscoroutinefunction(call) or asyncio.iscoroutinefunction(call)
    ):
        return "asgi"
    return "wsgi"


def asgi3(app: Any, interface: str) -> ASGIApp:
    """``app`` as an ASGI 3 callable (an ASGI 2 one wrapped)."""
    if interface != "asgi2":
        return app  # type: ignore[no-any-return]

    async def single(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope)(receive, send)

    return single
