"""FastAPI, and the same routes as a bare Starlette app, for the ASGI
framework tests (``tests/integration/test_asgi_frameworks.py``).

The surface every framework app of those tests offers:

- ``GET /hello``: plain text naming the framework, with the scope's
  ``root_path`` and ``path``;
- ``GET /stream?marker=NAME``: "first", then (once the file NAME exists in
  ``$DW_TEST_DIR``, or after 10 s) three parts and "last", each a chunk;
- ``POST /upload``: the body's length and sha256, as JSON (the raw body,
  read as it comes: no multipart parser);
- ``GET /state``: a value the lifespan startup set;
- ``GET /wait-disconnect?tag=T&seconds=S``: "waiting", then waits (S
  seconds at most, 30 by default) for the client to go, and appends "T
  disconnected" to the file ``$DW_DISCONNECT_LOG`` names;
- WebSocket ``/ws/chat``: each text message goes to every client connected
  to this worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute

MARKERS = os.environ.get("DW_TEST_DIR", "/tmp")
STARTED = "set by the lifespan startup"
CLIENTS: set[WebSocket] = set()


def note_disconnect(tag: str) -> None:
    path = os.environ.get("DW_DISCONNECT_LOG", os.path.join(MARKERS, "disconnects"))
    with open(path, "a") as out:
        out.write(f"{tag} disconnected\n")


async def wait_for_marker(name: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    path = os.path.join(MARKERS, name)
    while not os.path.exists(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    yield {"started": STARTED}  # Starlette puts it in scope["state"]: request.state


async def hello(request: Request) -> PlainTextResponse:
    scope = request.scope
    name = type(request.app).__name__
    return PlainTextResponse(
        f"hello from {name}\nroot_path={scope['root_path']}\npath={scope['path']}\n"
    )


async def stream(request: Request) -> StreamingResponse:
    name = request.query_params["marker"]

    async def parts() -> AsyncIterator[bytes]:
        yield b"first\n"
        await wait_for_marker(name)
        for number in range(3):
            yield f"part {number}\n".encode()
        yield b"last\n"

    return StreamingResponse(parts(), media_type="text/plain")


async def upload(request: Request) -> JSONResponse:
    digest = hashlib.sha256()
    length = 0
    async for chunk in request.stream():
        digest.update(chunk)
        length += len(chunk)
    return JSONResponse({"length": length, "sha256": digest.hexdigest()})


async def state(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.state.started)


async def wait_disconnect(request: Request) -> StreamingResponse:
    tag = request.query_params["tag"]
    seconds = float(request.query_params.get("seconds", 30))

    async def parts() -> AsyncIterator[bytes]:
        yield b"waiting\n"
        for _ in range(int(seconds / 0.05)):
            if await request.is_disconnected():  # http.disconnect, without blocking
                note_disconnect(tag)
                return
            await asyncio.sleep(0.05)
        yield b"still connected\n"

    return StreamingResponse(parts(), media_type="text/plain")


async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    CLIENTS.add(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            for client in list(CLIENTS):
                with contextlib.suppress(Exception):  # (one that is leaving)
                    await client.send_text(text)
    except WebSocketDisconnect:
        pass
    finally:
        CLIENTS.discard(websocket)


app = FastAPI(lifespan=lifespan)
app.get("/hello")(hello)
app.get("/stream")(stream)
app.post("/upload")(upload)
app.get("/state")(state)
app.get("/wait-disconnect")(wait_disconnect)
app.websocket("/ws/chat")(chat)

starlette_app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/stream", stream),
        Route("/upload", upload, methods=["POST"]),
        Route("/state", state),
        Route("/wait-disconnect", wait_disconnect),
        WebSocketRoute("/ws/chat", chat),
    ],
    lifespan=lifespan,
)
