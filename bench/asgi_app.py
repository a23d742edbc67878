"""The ASGI application the ASGI targets serve: bench/app.py's routes
(``/hello``, ``/big``, ``/upload``) as an ASGI 3 coroutine.  Copied into the
run's directory as ``benchasgi``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

HELLO = b"Hello world\n"
BIG = b"0123456789abcdef" * 7680

Message = dict[str, Any]


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    route = scope["path"].rpartition("/")[2]
    if route == "hello":
        body = HELLO
    elif route == "big":
        body = BIG
    elif route == "upload":
        received = 0
        more = True
        while more:
            message = await receive()
            received += len(message.get("body", b""))
            more = message.get("more_body", False)
        body = str(received).encode()
    else:
        body = b"not found\n"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": 200 if body != b"not found\n" else 404,
            "headers": headers,
        }
    )
    await send({"type": "http.response.body", "body": body})
