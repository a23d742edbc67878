"""Async views of the Django project for ASGI: the surface every framework
app of ``tests/integration/test_asgi_frameworks.py`` offers (see
``tests/apps/fastapi_app.py``), except ``/state``: Django has no lifespan
(its ASGI handler refuses the ``lifespan`` scope), so there is no startup
state to show.  A disconnect cancels the view's task (Django's ASGI handler
listens for ``http.disconnect``)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

MARKERS = os.environ.get("DW_TEST_DIR", "/tmp")


def note_disconnect(tag: str) -> None:
    name = os.environ.get("DW_DISCONNECT_LOG", os.path.join(MARKERS, "disconnects"))
    with open(name, "a") as out:
        out.write(f"{tag} disconnected\n")


async def wait_for_marker(name: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    marker = os.path.join(MARKERS, name)
    while not os.path.exists(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)


async def hello(request: HttpRequest) -> HttpResponse:
    scope = request.scope  # (an ASGIRequest)
    text = f"hello from Django\nroot_path={scope['root_path']}\npath={scope['path']}\n"
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    name = request.GET["marker"]

    async def parts() -> AsyncIterator[bytes]:
        yield b"first\n"
        await wait_for_marker(name)
        for number in range(3):
            yield f"part {number}\n".encode()
        yield b"last\n"

    return StreamingHttpResponse(parts(), content_type="text/plain")


@csrf_exempt
async def upload(request: HttpRequest) -> HttpResponse:
    data = request.body  # (read by the handler, spooled to a file)
    return HttpResponse(
        json.dumps({"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}),
        content_type="application/json",
    )


async def wait_disconnect(request: HttpRequest) -> StreamingHttpResponse:
    tag = request.GET["tag"]
    seconds = float(request.GET.get("seconds", 30))

    async def parts() -> AsyncIterator[bytes]:
        yield b"waiting\n"
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:  # Django: http.disconnect came
            note_disconnect(tag)
            raise
        yield b"still connected\n"

    return StreamingHttpResponse(parts(), content_type="text/plain")


urlpatterns = [
    path("hello", hello),
    path("stream", stream),
    path("upload", upload),
    path("wait-disconnect", wait_disconnect),
]
