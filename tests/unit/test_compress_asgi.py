"""CompressASGI: the WSGI middleware's policy on ASGI messages."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Any

import pytest

from dumbwaiter.middleware import CompressASGI

TEXT = b"hello, compressible world\n" * 200


def app_sending(*bodies: bytes, content_type: bytes = b"text/plain", extra: Any = ()) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", content_type), *extra]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for index, body in enumerate(bodies):
            more = index < len(bodies) - 1
            await send({"type": "http.response.body", "body": body, "more_body": more})

    return app


def call(
    app: Any, *, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None, **kw: Any
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "headers": headers if headers is not None else [(b"accept-encoding", b"gzip")],
    }
    asyncio.run(CompressASGI(app, encodings="gzip", **kw)(scope, receive, send))
    return sent


def header(message: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in message["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


def test_a_whole_body_is_compressed_with_its_length() -> None:
    start, body = call(app_sending(TEXT, extra=[(b"content-length", b"5200")]))
    assert header(start, b"content-encoding") == b"gzip"
    assert header(start, b"vary") == b"Accept-Encoding"
    assert header(start, b"content-length") == str(len(body["body"])).encode()
    assert gzip.decompress(body["body"]) == TEXT


def test_a_streamed_body_is_compressed_message_by_message() -> None:
    messages = call(app_sending(TEXT[:1000], TEXT[1000:3000], b""))
    start, *bodies = messages
    assert header(start, b"content-encoding") == b"gzip"
    assert header(start, b"content-length") is None
    assert [m["more_body"] for m in bodies] == [True, True, False]
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    first = inflate.decompress(bodies[0]["body"])
    assert first == TEXT[:1000]  # flushed: the client has the first piece at once
    rest = inflate.decompress(b"".join(m["body"] for m in bodies[1:])) + inflate.flush()
    assert first + rest == TEXT[:3000]


@pytest.mark.parametrize(
    ("app", "headers", "method", "vary"),
    [
        (app_sending(b"tiny"), None, "GET", True),  # under min_size
        (app_sending(TEXT, content_type=b"image/png"), None, "GET", False),
        (app_sending(TEXT), [], "GET", True),  # no Accept-Encoding
        (app_sending(TEXT), [(b"accept-encoding", b"gzip"), (b"range", b"bytes=0-1")], "GET", True),
        (app_sending(TEXT), None, "HEAD", False),
        (app_sending(TEXT, extra=[(b"content-encoding", b"br")]), None, "GET", False),
    ],
)
def test_responses_not_compressed_pass_as_they_are(
    app: Any, headers: list[tuple[bytes, bytes]] | None, method: str, vary: bool
) -> None:
    start, *bodies = call(app, headers=headers, method=method)
    assert header(start, b"content-encoding") in (None, b"br")
    assert (header(start, b"vary") == b"Accept-Encoding") is vary
    assert b"".join(m["body"] for m in bodies) in (TEXT, b"tiny")


def test_pathsend_and_other_scopes_pass_through() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": "/etc/hostname"})

    start, pathsend = call(app)
    assert header(start, b"content-encoding") is None
    assert header(start, b"vary") == b"Accept-Encoding"
    assert pathsend == {"type": "http.response.pathsend", "path": "/etc/hostname"}

    seen: list[str] = []

    async def websocket_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        await send({"type": "websocket.accept"})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {}

    scope = {"type": "websocket", "headers": [(b"accept-encoding", b"gzip")]}
    asyncio.run(CompressASGI(websocket_app)(scope, receive, send))
    assert seen == ["websocket"] and sent == [{"type": "websocket.accept"}]


def test_bad_options_raise_as_for_wsgi() -> None:
    with pytest.raises(ValueError, match="level"):
        CompressASGI(app_sending(b""), level=0)
