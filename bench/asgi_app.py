"""The ASGI application the ASGI targets serve: bench/app.py's routes
(``/hello``, ``/big``, ``/upload``) as an ASGI 3 coroutine, and a WebSocket
echo (any path: every message sent back as it came, text as text, bytes as
bytes) for the ws-echo workload (bench/ws_echo.py).  Plain ASGI, no
framework, so that every server runs the same code.  Copied into the run's
directory as ``benchasgi``."""

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
    if scope["type"] == "websocket":
        await echo(receive, send)
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


async def echo(
    receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    """Accept, then send every message back until the client leaves."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
