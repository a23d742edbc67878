"""A Litestar app for the ASGI framework tests: the surface every framework
app of ``tests/integration/test_asgi_frameworks.py`` offers (see
``fastapi_app.py``), the Litestar way: the lifespan startup is an
``on_startup`` hook setting ``app.state``, and a ``Stream`` response is
cancelled when ``http.disconnect`` comes (Litestar listens for it)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, MediaType, Request, get, post, websocket
from litestar.connection import WebSocket
from litestar.datastructures import State
from litestar.exceptions import WebSocketDisconnect
from litestar.response import Stream

MARKERS = os.environ.get("DW_TEST_DIR", "/tmp")
STARTED = "set by the lifespan startup"
CLIENTS: set[WebSocket[Any, Any, Any]] = set()


def note_disconnect(tag: str) -> None:
    path = os.environ.get("DW_DISCONNECT_LOG", os.path.join(MARKERS, "disconnects"))
    with open(path, "a") as out:
        out.write(f"{tag} disconnected\n")


async def wait_for_marker(name: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    path = os.path.join(MARKERS, name)
    while not os.path.exists(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


def startup(app: Litestar) -> None:
    app.state.started = STARTED


@get("/hello", media_type=MediaType.TEXT)
async def hello(request: Request[Any, Any, Any]) -> str:
    scope = request.scope
    return f"hello from Litestar\nroot_path={scope['root_path']}\npath={scope['path']}\n"


@get("/stream")
async def stream(marker: str) -> Stream:
    async def parts() -> AsyncIterator[bytes]:
        yield b"first\n"
        await wait_for_marker(marker)
        for number in range(3):
            yield f"part {number}\n".encode()
        yield b"last\n"

    return Stream(parts(), media_type=MediaType.TEXT)


@post("/upload", status_code=200)
async def upload(request: Request[Any, Any, Any]) -> dict[str, Any]:
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.stream():
        digest.update(chunk)
        length += len(chunk)
    return {"length": length, "sha256": digest.hexdigest()}


@get("/state", media_type=MediaType.TEXT)
async def state(state: State) -> str:
    return str(state.started)


@get("/wait-disconnect")
async def wait_disconnect(tag: str, seconds: float = 30) -> Stream:
    async def parts() -> AsyncIterator[bytes]:
        yield b"waiting\n"
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:  # Litestar: http.disconnect came
            note_disconnect(tag)
            raise
        yield b"still connected\n"

    return Stream(parts(), media_type=MediaType.TEXT)


@websocket("/ws/chat")
async def chat(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    CLIENTS.add(socket)
    try:
        while True:
            text = await socket.receive_text()
            for client in list(CLIENTS):
                with contextlib.suppress(Exception):  # (one that is leaving)
                    await client.send_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        CLIENTS.discard(socket)


app = Litestar(
    route_handlers=[hello, stream, upload, state, wait_disconnect, chat],
    on_startup=[startup],
)
