"""A Quart app for the ASGI framework tests: the surface every framework app
of ``tests/integration/test_asgi_frameworks.py`` offers (see
``fastapi_app.py``), the Quart way: the lifespan startup is
``before_serving``, a disconnect cancels the request's task (Quart's
equivalent of ``http.disconnect``), and the WebSocket broadcast goes
through a queue per connection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from quart import Quart, copy_current_websocket_context, request, websocket

MARKERS = os.environ.get("DW_TEST_DIR", "/tmp")
STARTED = "set by the lifespan startup"
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
QUEUES: set[asyncio.Queue[str]] = set()

app = Quart(__name__)


def note_disconnect(tag: str) -> None:
    path = os.environ.get("DW_DISCONNECT_LOG", os.path.join(MARKERS, "disconnects"))
    with open(path, "a") as out:
        out.write(f"{tag} disconnected\n")


async def wait_for_marker(name: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    path = os.path.join(MARKERS, name)
    while not os.path.exists(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


@app.before_serving
async def startup() -> None:
    app.config["STARTED"] = STARTED


@app.get("/hello")
async def hello() -> tuple[str, int, dict[str, str]]:
    scope = request.scope
    text = f"hello from Quart\nroot_path={scope['root_path']}\npath={scope['path']}\n"
    return text, 200, TEXT


@app.get("/stream")
async def stream() -> tuple[AsyncIterator[bytes], int, dict[str, str]]:
    name = request.args["marker"]

    async def parts() -> AsyncIterator[bytes]:
        yield b"first\n"
        await wait_for_marker(name)
        for number in range(3):
            yield f"part {number}\n".encode()
        yield b"last\n"

    return parts(), 200, TEXT


@app.post("/upload")
async def upload() -> dict[str, Any]:
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.body:
        digest.update(chunk)
        length += len(chunk)
    return {"length": length, "sha256": digest.hexdigest()}


@app.get("/state")
async def state() -> tuple[str, int, dict[str, str]]:
    return app.config["STARTED"], 200, TEXT


@app.get("/wait-disconnect")
async def wait_disconnect() -> tuple[AsyncIterator[bytes], int, dict[str, str]]:
    tag = request.args["tag"]
    seconds = float(request.args.get("seconds", 30))

    async def parts() -> AsyncIterator[bytes]:
        yield b"waiting\n"
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:  # Quart: the client is gone
            note_disconnect(tag)
            raise
        yield b"still connected\n"

    return parts(), 200, TEXT


@app.websocket("/ws/chat")
async def chat() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    await websocket.accept()
    QUEUES.add(queue)

    @copy_current_websocket_context
    async def relay() -> None:
        while True:
            await websocket.send(await queue.get())

    sender = asyncio.ensure_future(relay())
    try:
        while True:
            text = await websocket.receive()
            for each in list(QUEUES):
                each.put_nowait(text if isinstance(text, str) else text.decode())
    finally:
        QUEUES.discard(queue)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
