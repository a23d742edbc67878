"""A recording Exchange for driving the WSGI gateway in-process, no socket.

``FakeStream`` implements the Exchange protocol of ``dumbwaiter.typing``
and checks the contract the connection layer relies on after every call: at
most one head, body only after it, exactly one of start(end=True) / end() /
abort(), nothing after that, and only headers the wire can carry.
``serve()`` runs an app once on one.  Used by tests/unit/test_wsgi.py and
tests/unit/test_compress.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import IO, Any

from dumbwaiter.config import Config
from dumbwaiter.protocols import Role
from dumbwaiter.request import Request
from dumbwaiter.wsgi import WSGIGateway

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


BASE_CGI = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SERVER_NAME": "test",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
}


class FakeStream:
    """Records the gateway's response calls; ``check()`` verifies the contract."""

    def __init__(
        self,
        cgi: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        threshold: int = Config().spool_threshold,
        role: Role = Role.RESPONDER,
        data: bytes | None = None,
        peer: dict[str, str] | None = None,
        sendfile_ok: bool = False,
        cancel_after_writes: int | None = None,
    ) -> None:
        environ = dict(BASE_CGI) if cgi is None else dict(cgi)
        self.request = Request(1, environ, role, threshold)
        # Written in pieces, as the loop does.
        for start in range(0, len(body), 7):
            self.request.add_body(body[start : start + 7])
        if data is not None:
            assert self.request.filter_data is not None
            self.request.filter_data.write(data)
        self.request.finish()
        self.cancelled = False
        self._peer = peer or {}
        self.sendfile_ok = sendfile_ok
        self.cancel_after_writes = cancel_after_writes
        self.calls: list[tuple[Any, ...]] = []
        self.sent = bytearray()  # the body as the client would get it

    @property
    def peer(self) -> dict[str, str]:
        return self._peer

    # -- the Exchange protocol ------------------------------------------------------------
    def start(self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool) -> None:
        self.calls.append(("start", status, list(headers), body, end))
        self.sent += body

    def write(self, data: bytes) -> bool:
        self.calls.append(("write", data))
        self.sent += data
        writes = sum(1 for call in self.calls if call[0] == "write")
        if self.cancel_after_writes is not None and writes >= self.cancel_after_writes:
            # The loop cancels right after queueing this write: it went out.
            self.cancel()
            return True
        return not self.cancelled

    def end(self) -> None:
        self.calls.append(("end",))

    def abort(self) -> None:
        self.calls.append(("abort",))

    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool:
        # asyncio's loop.sendfile refuses a count that is not positive.
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
        self.calls.append(("sendfile", file, offset, count))
        if self.sendfile_ok:
            self.sent += os.pread(file.fileno(), count, offset)
        return self.sendfile_ok

    # -- what the loop does ----------------------------------------------------------------
    def cancel(self) -> None:
        self.cancelled = True
        self.request.input.abort()
        if self.request.filter_input is not None:
            self.request.filter_input.abort()

    # -- inspection ------------------------------------------------------------------------
    def kinds(self) -> list[str]:
        return [call[0] for call in self.calls]

    @property
    def head(self) -> tuple[Any, ...]:
        starts = [call for call in self.calls if call[0] == "start"]
        assert len(starts) == 1, self.calls
        return starts[0]

    @property
    def status(self) -> str:
        return str(self.head[1])

    @property
    def headers(self) -> list[tuple[str, str]]:
        return list(self.head[2])

    def check(self) -> None:
        """The contract the connection layer and the protocols rely on."""
        started = ended = False
        for call in self.calls:
            assert not ended, f"{call[0]} after the response ended: {self.calls}"
            kind = call[0]
            if kind == "start":
                assert not started, f"two heads: {self.calls}"
                started = True
                _, status, headers, body, end = call
                assert type(status) is str
                status.encode("latin-1")
                assert "\r" not in status and "\n" not in status
                for name, value in headers:
                    assert type(name) is str and type(value) is str
                    name.encode("latin-1")
                    value.encode("latin-1")
                    assert not {"\r", "\n", "\0"} & set(name + value), (name, value)
                assert type(body) is bytes
                ended = end
            elif kind in ("write", "sendfile"):
                assert started, f"{kind} before the head: {self.calls}"
                if kind == "write":
                    assert type(call[1]) is bytes and call[1]
            elif kind == "end":
                assert started or self.cancelled, f"end() without a head: {self.calls}"
                ended = True
            elif kind == "abort":
                ended = True
        assert ended, f"the response was never finished: {self.calls}"


def serve(
    app: App,
    stream: FakeStream | None = None,
    **settings: Any,
) -> FakeStream:
    """Run ``app`` once on ``stream``; ``settings``: the gateway's keywords."""
    stream = stream or FakeStream()
    WSGIGateway(app, **settings)(stream)  # type: ignore[arg-type]
    stream.check()
    return stream
