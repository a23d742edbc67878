"""Response compression as ASGI middleware: :class:`CompressASGI`.

The same policy as the WSGI :class:`~.compress.Compress` (which coding, which
responses, the headers of the compressed variant), on ASGI's messages:
``http.response.start`` is held until the first body message, so that a
body sent in one message is measured against ``min_size`` and goes out with
its compressed Content-Length; a body in several messages is compressed and
flushed message by message (it still streams).  A response that is not
compressed passes through untouched, ``http.response.pathsend`` included;
WebSocket and lifespan scopes, and HEAD requests, are passed to the app as
they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..asgi.detect import ASGIApp, Message, Receive, Scope, Send
from .codings import ENCODERS, Encoder, negotiate
from .compress import Compress, encoded_headers, with_vary
from .mediatypes import DEFAULT_TYPES

__all__ = ["CompressASGI"]


def _no_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:  # pragma: no cover
    return []


class CompressASGI:
    """Compress the HTTP responses of the ASGI ``app`` that are worth it;
    the options are :class:`~.compress.Compress`'s (and raise as it does)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        min_size: int = 1024,
        types: Iterable[str] = DEFAULT_TYPES,
        level: int = 6,
        encodings: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.policy = Compress(
            _no_app, min_size=min_size, types=types, level=level, encodings=encodings
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        accept = None
        ranged = False
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                accept = value.decode("latin-1")
            elif name == b"range":
                ranged = True  # a range is of the identity bytes
        coding = None if ranged else negotiate(accept, self.policy.encodings)
        await self.app(scope, receive, _Response(self.policy, send, coding).send)


class _Response:
    """One response's messages on their way through :class:`CompressASGI`."""

    def __init__(self, policy: Compress, upstream: Send, coding: str | None) -> None:
        self.policy = policy
        self.upstream = upstream
        self.coding = coding
        self.start: Message | None = None  # held, to compress
        self.encoder: Encoder | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            status = int(message["status"])
            headers = [
                (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", ())
            ]
            if not self.policy.compressible(f"{status} ", headers):
                await self.upstream(message)
            elif self.coding is None:
                await self.upstream(started(message, with_vary(headers)))
            else:
                self.start = {**message, "headers": headers}
            return
        start = self.start
        if kind == "http.response.body" and (start is not None or self.encoder is not None):
            await self.body(bytes(message.get("body", b"")), bool(message.get("more_body")))
            return
        if start is not None:  # (pathsend, or what else: the identity bytes)
            self.start = None
            await self.upstream(started(start, with_vary(start["headers"])))
        await self.upstream(message)

    async def body(self, data: bytes, more: bool) -> None:
        start, self.start = self.start, None
        coding = self.coding
        assert coding is not None
        level = self.policy.level
        if start is not None:
            headers = start["headers"]
            if not more:  # the whole body: compressed with its length, if it shrinks
                packed = ENCODERS[coding](level).finish(data) if data else b""
                if data and len(data) >= self.policy.min_size and len(packed) < len(data):
                    await self.upstream(
                        started(start, encoded_headers(headers, coding, len(packed)))
                    )
                    await self.upstream({"type": "http.response.body", "body": packed})
                else:
                    await self.upstream(started(start, with_vary(headers)))
                    await self.upstream({"type": "http.response.body", "body": data})
                return
            await self.upstream(started(start, encoded_headers(headers, coding, None)))
            self.encoder = ENCODERS[coding](level)
        encoder = self.encoder
        assert encoder is not None
        out = encoder.chunk(data) if more else encoder.finish(data)
        if out or not more:
            await self.upstream({"type": "http.response.body", "body": out, "more_body": more})


def started(message: Message, headers: list[tuple[str, str]]) -> Message:
    """``http.response.start`` with ``headers`` (as ASGI's bytes pairs)."""
    pairs = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    return {**message, "headers": pairs}
