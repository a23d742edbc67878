"""The PEP 3333 driver: calls the application, once per request, for every
protocol and driver.

It runs in an application thread.  It completes the environ of the
exchange's request (:mod:`.environ`), calls the application, and turns what
the application does into the calls of the :class:`~dumbwaiter.typing.Exchange`
the server gave it:

* the head goes out with the first non-empty body chunk (or at the end of an
  empty iterable), as PEP 3333 asks; a list or tuple result goes out in one
  piece, head, body and end together;
* an exception before the head gives a 500 (traceback in the error log, in
  the body only with ``debug``); after it, the response is *aborted*, so
  the front server sees a broken response and never a truncated 200;
* ``close()`` of the result is always called, also when the client left.

It knows nothing of sockets, event loops, wire protocols or the settings
table.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any, cast

from ..access import AddressList
from ..errors import ClientDisconnected
from ..fields import (
    STATUS,
    VALID_MAX,
    VALID_NAMES,
    VALID_STATUS,
    VALID_VALUES,
    valid_name,
    valid_value,
)
from ..typing import Exchange, WSGIApp
from .environ import complete_environ
from .objects import ErrorStream, FileWrapper

__all__ = ["WSGIGateway"]

log = logging.getLogger("dumbwaiter")
app_log = logging.getLogger("dumbwaiter.app")


class WSGIGateway:
    """Runs one request of ``app`` per call, in the calling thread.

    ``debug``: a 500's body shows the traceback.  ``script_name``: the mount
    prefix, if the front server does not say it (see
    :func:`~dumbwaiter.wsgi.environ.fix_paths`).  ``trusted``: the proxies
    whose forwarding headers are believed, on the connections the server
    marks :data:`~dumbwaiter.typing.FORWARDED`.  ``multithread`` and
    ``multiprocess``: what ``wsgi.multithread`` and ``wsgi.multiprocess`` say.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        debug: bool = False,
        script_name: str | None = None,
        trusted: AddressList | None = None,
        multithread: bool = True,
        multiprocess: bool = False,
    ) -> None:
        self.app = app
        self.debug = debug
        self.script_name = script_name
        self.trusted = trusted if trusted is not None else AddressList(())
        self.errors = ErrorStream()
        self.base: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.errors": self.errors,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
        }

    def __call__(self, exchange: Exchange) -> None:
        environ = complete_environ(
            exchange.request, exchange.peer, self.base, self.trusted, self.script_name
        )
        _Call(exchange, self.debug).run(self.app, environ)


class _Call:
    """The state of one application call: start_response, write, the result."""

    __slots__ = (
        "debug",
        "environ",
        "exchange",
        "finished",
        "head",
        "headers",
        "length",
        "sent",
        "status",
        "written",
    )

    def __init__(self, exchange: Exchange, debug: bool) -> None:
        self.exchange = exchange
        self.debug = debug
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False  # the head went out
        self.finished = False  # end, abort or error sent
        self.length = -1  # the Content-Length the app declared
        self.written = 0
        self.environ: dict[str, Any] = {}
        self.head = False  # a HEAD request: a declared length need not be met

    # -- the callables the application gets ----------------------------------
    # The application's arguments are typed ``object`` (``exc_info``: Any,
    # used as PEP 3333 says, whatever it is) and checked here, so
    # that the compiled build (which enforces annotations at the call) gives
    # the same answers as the pure one: a tuple of headers is accepted, a
    # bytes status is a ValueError.
    def start_response(
        self, status: object, headers: Iterable[object], exc_info: Any = None
    ) -> Callable[[object], None]:
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        if type(status) is not str:
            raise ValueError(f"bad status line {status!r}")
        if status not in VALID_STATUS:
            if not STATUS.match(status):
                raise ValueError(f"bad status line {status!r}")
            if len(VALID_STATUS) < VALID_MAX:
                VALID_STATUS.add(status)
        length = -1
        checked: list[tuple[str, str]] = []
        for header in headers:
            if type(header) is not tuple or len(header) != 2:
                raise TypeError(f"a header must be a (name, value) tuple, not {header!r}")
            name, value = header
            if type(name) is not str:
                raise ValueError(f"bad header name {name!r}")
            # (the sets looked at here: no call for what was seen before)
            if name not in VALID_NAMES and not valid_name(name):
                raise ValueError(f"bad header name {name!r}")
            if type(value) is not str or (value not in VALID_VALUES and not valid_value(value)):
                raise ValueError(f"bad value for header {name}: {value!r}")
            if len(name) == 14 and name.lower() == "content-length":
                length = int(value) if value.isdigit() else -1
            checked.append(header)
        self.status = status
        self.headers = checked  # what was validated, whatever the app does next
        self.length = length
        return self.write

    def write(self, data: object) -> None:
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if type(data) is not bytes:
            raise TypeError(f"the body must be bytes, not {type(data).__name__}")
        if not data:
            return
        if 0 <= self.length < self.written + len(data):
            data = data[: max(self.length - self.written, 0)]
            if not data:
                return
        self.written += len(data)
        if not self.sent:
            self.sent = True
            self.exchange.start(self.status, self.headers, data, False)
        elif not self.exchange.write(data):
            raise ClientDisconnected("the client went away")

    # -- running the application ---------------------------------------------
    def run(self, app: WSGIApp, environ: dict[str, Any]) -> None:
        self.environ = environ
        method: str = environ["REQUEST_METHOD"]
        self.head = method == "HEAD"
        try:
            # object, not bytes: what the app yields is checked by write(),
            # the same in both builds (a compiled loop would check each item).
            result: Iterable[object] = app(environ, self.start_response)
        except ClientDisconnected:  # from the write() callable: not the app's fault
            self.finished = True
            self.exchange.end()
            return
        except Exception:
            self.fail()
            return
        except BaseException:  # SystemExit, KeyboardInterrupt: answer, then let it go
            self.fail()
            raise
        try:
            if type(result) is list or type(result) is tuple:
                self.send_whole(result)
            elif type(result) is FileWrapper and self.send_file(result):
                pass
            else:
                exchange = self.exchange
                for chunk in result:
                    if chunk:
                        self.write(chunk)
                    if exchange.cancelled:
                        break
                self.finish()
        except ClientDisconnected:
            self.finished = True
            self.exchange.end()
        except Exception:
            self.fail()
        except BaseException:
            self.fail()
            raise
        finally:
            # (a list or tuple has no close(): not looked for)
            close = None if type(result) is list else getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    self.log_error("error in the close() of the application's result")
            if not self.finished:  # unreachable; never leave the exchange open
                self.finished = True
                self.exchange.abort()

    def send_whole(self, parts: list[object] | tuple[object, ...]) -> None:
        """A list or tuple: the whole body is known, send it in one piece."""
        if self.sent:  # the app called write() before returning
            for part in parts:
                self.write(part)
            self.finish()
            return
        body = parts[0] if len(parts) == 1 else b"".join(cast("Iterable[bytes]", parts))
        if type(body) is not bytes:
            raise TypeError(f"the body must be bytes, not {type(body).__name__}")
        if self.status is None:
            raise AssertionError("the application returned without calling start_response()")
        if 0 <= self.length != len(body):
            if self.length > len(body) and not self.head:
                raise ValueError(
                    f"Content-Length is {self.length} but the body has {len(body)} bytes"
                )
            body = body[: self.length]
        self.sent = self.finished = True
        self.exchange.start(self.status, self.headers, body, True)

    def send_file(self, wrapper: FileWrapper) -> bool:
        """sendfile(2) when the file is a real file and its length is declared."""
        filelike = wrapper.filelike
        if self.status is None or self.sent or self.length <= 0:
            return False  # nothing to send: loop.sendfile refuses count=0
        try:
            fileno = filelike.fileno()
            offset = filelike.tell()
            size = os.fstat(fileno).st_size
        except (AttributeError, OSError, TypeError, ValueError):
            return False
        count = min(self.length, size - offset)
        if count < self.length:
            return False
        self.sent = True
        self.exchange.start(self.status, self.headers, b"", False)
        if not self.exchange.sendfile(filelike, offset, count):
            if self.exchange.cancelled:
                self.finished = True
                self.exchange.end()
                return True
            filelike.seek(offset)
            for block in wrapper:
                self.write(block)
        self.written = self.length
        self.finish()
        return True

    def finish(self) -> None:
        if self.exchange.cancelled:
            self.finished = True
            self.exchange.end()
            return
        if not self.sent:
            if self.status is None:
                raise AssertionError("the application returned without calling start_response()")
            if self.length > 0 and not self.head:
                raise ValueError(f"Content-Length is {self.length} but the body is empty")
            self.sent = self.finished = True
            self.exchange.start(self.status, self.headers, b"", True)
            return
        if 0 <= self.written < self.length and not self.head:
            raise ValueError(
                f"Content-Length is {self.length} but the body has {self.written} bytes"
            )
        self.finished = True
        self.exchange.end()

    def fail(self) -> None:
        """An exception escaped the application: 500 if we still can, else abort."""
        self.log_error("error in the application")
        if self.finished:
            return
        self.finished = True
        if self.sent:
            self.exchange.abort()
            return
        if self.debug:
            body = traceback.format_exc().encode("utf-8", "replace")
        else:
            body = b"500 Internal Server Error\n"
        self.sent = True
        self.exchange.start(
            "500 Internal Server Error",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            body,
            True,
        )

    def log_error(self, what: str) -> None:
        environ = self.environ
        app_log.error(
            "%s: %s %s%s",
            what,
            environ.get("REQUEST_METHOD", "?"),
            environ.get("SCRIPT_NAME", ""),
            environ.get("PATH_INFO", ""),
            exc_info=sys.exc_info(),
        )
