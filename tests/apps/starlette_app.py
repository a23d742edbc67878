"""A Starlette app for the ASGI tests: lifespan state, path and query
parameters, a JSON body, a streamed response, the root path."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
    yield {"started": "yes"}


async def item(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "item": request.path_params["name"],
            "q": request.query_params.get("q"),
            "root_path": request.scope.get("root_path"),
            "url": str(request.url),
            "started": request.state.started,
        }
    )


async def echo(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"got": data, "length": len(await request.body())})


async def stream(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for number in range(3):
            yield f"part {number}\n".encode()

    return StreamingResponse(parts(), media_type="text/plain")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello from Starlette\n")


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/items/{name}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
    ],
    lifespan=lifespan,
)
