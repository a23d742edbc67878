"""An ASGI app with WebSockets, for the tests that put fronts before it.

HTTP: ``GET /`` answers 200 "ok"; ``GET /closes`` the close frames clients
sent (JSON: a list of [path, code, reason], oldest first).  WebSocket:
``/echo`` sends each message back as it came (text as text, bytes as
bytes); ``/chat`` sends each message to every client of ``/chat`` connected
to this worker, its sender included; ``/close-me`` closes with 4002 "bye"
after the first message.  Each accepts the first subprotocol offered.
State is per worker: serve it with one (the default).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The WebSocket /chat clients' send callables.
ROOM: set[Send] = set()
#: [path, code, reason] of each disconnect a client started.
CLOSES: list[list[Any]] = []


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    elif scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)


async def http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/":
        status, body, kind = 200, b"ok", b"text/plain"
    elif scope["path"] == "/closes":
        status, body, kind = 200, json.dumps(CLOSES).encode(), b"application/json"
    else:
        status, body, kind = 404, b"not found", b"text/plain"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def websocket(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    path = scope["path"]
    assert (await receive())["type"] == "websocket.connect"
    if path not in ("/echo", "/chat", "/close-me"):
        await send({"type": "websocket.close", "code": 1008})
        return
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    if path == "/chat":
        ROOM.add(send)
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                CLOSES.append([path, message.get("code"), message.get("reason", "")])
                return
            data = {key: message[key] for key in ("text", "bytes") if message.get(key) is not None}
            if path == "/echo":
                await send({"type": "websocket.send", **data})
            elif path == "/chat":
                for member in list(ROOM):
                    try:
                        await member({"type": "websocket.send", **data})
                    except OSError:  # that one is gone (ClientDisconnected)
                        ROOM.discard(member)
            else:
                await send({"type": "websocket.close", "code": 4002, "reason": "bye"})
                return
    finally:
        ROOM.discard(send)
