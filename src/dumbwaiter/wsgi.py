"""The WSGI gateway (PEP 3333), written once for every protocol.

It runs in an application thread.  It completes the environ of a
:class:`~dumbwaiter.request.Request`, calls the application, and turns what the
application does into the response calls of a *stream* (the thread-side handle
the connection layer gives it, :class:`~dumbwaiter.server.connection.Stream`):

* the head goes out with the first non-empty body chunk (or at the end of an
  empty iterable), as PEP 3333 asks; a list or tuple result goes out in one
  piece, head, body and end together;
* an exception before the head gives a 500 (traceback in the error log, in
  the body only with ``--debug``); after it, the response is *aborted*, so
  the front server sees a broken response and never a truncated 200;
* ``close()`` of the result is always called, also when the client left.

It knows nothing of sockets, asyncio or wire protocols.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, cast
from urllib.parse import unquote_to_bytes

from .access import AddressList, apply_forwarded
from .config import Config
from .protocols import Role
from .wsgi_objects import ClientDisconnected, ErrorStream, FileWrapper

if TYPE_CHECKING:
    from .request import Request

__all__ = [
    "FORWARDED",
    "ClientDisconnected",
    "FileWrapper",
    "ResponseStream",
    "WSGIApp",
    "WSGIGateway",
    "fix_paths",
]

#: Set in a connection's peer values when its forwarding headers are believed.
FORWARDED: Final = "dumbwaiter.forwarded"

log = logging.getLogger("dumbwaiter")
app_log = logging.getLogger("dumbwaiter.app")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Status and header values must be latin-1 (PEP 3333): the protocols encode them.
_STATUS: Final = re.compile(r"[1-9][0-9][0-9] [^\r\n\0\u0100-\U0010ffff]*\Z")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE: Final = re.compile(r"[\r\n\0\u0100-\U0010ffff]")
#: Status lines, header names and values already found valid: an application answers
#: with a handful of each, so most are checked once (bounded, shared by the
#: threads; a set's add and lookup are atomic).
_VALID_STATUS: Final[set[str]] = set()
_VALID_NAMES: Final[set[str]] = set()
_VALID_VALUES: Final[set[str]] = set()
_VALID_MAX: Final = 512
#: Values are remembered only when short (Content-Type, Content-Length):
#: long ones (cookies, policies) are neither frequent nor worth keeping.
_VALUE_CACHED: Final = 32


class ResponseStream(Protocol):
    """What the gateway needs from the connection layer (see connection.Stream)."""

    request: Request
    cancelled: bool

    @property
    def peer(self) -> dict[str, str]: ...

    def start(
        self, status: str, headers: list[tuple[str, str]], body: bytes, end: bool
    ) -> None: ...
    def write(self, data: bytes) -> bool: ...
    def end(self) -> None: ...
    def abort(self) -> None: ...
    def sendfile(self, file: IO[bytes], offset: int, count: int) -> bool: ...


def fix_paths(environ: dict[str, Any], script_name: str | None) -> None:
    """Make SCRIPT_NAME/PATH_INFO right whatever the front server sent.

    * With ``script_name`` configured (the mount prefix), the full path is
      split at it: SCRIPT_NAME = prefix, PATH_INFO = the rest.
    * Without it, a missing PATH_INFO (nginx's default ``fastcgi_params``,
      SCGI, uwsgi) is derived from REQUEST_URI: what follows SCRIPT_NAME, or
      the whole path when SCRIPT_NAME *is* the whole path (nginx sets it to
      ``$fastcgi_script_name``, which is the full URI without a split).
      Apache's mod_proxy_fcgi and mod_proxy_scgi do the same, but name the
      path below the ProxyPass prefix in SCRIPT_FILENAME, which gives the split.
    """
    path_info: str | None = environ.get("PATH_INFO")
    if script_name is None:
        if path_info is not None:
            environ.setdefault("SCRIPT_NAME", "")
            return
        path = _request_path(environ)
        script: str = environ.get("SCRIPT_NAME", "")
        proxied = _apache_proxy_path(environ.get("SCRIPT_FILENAME", ""))
        if proxied is not None and path.endswith(proxied) and proxied.startswith("/"):
            # Apache mod_proxy_fcgi/scgi: SCRIPT_NAME is the whole path, and
            # only SCRIPT_FILENAME ("proxy:fcgi://host:port/rest") tells
            # where the ProxyPass prefix ends.
            environ["SCRIPT_NAME"] = path[: len(path) - len(proxied)]
            environ["PATH_INFO"] = proxied
        # Split only at a segment boundary: /app covers /app/x, not /application.
        elif script and path.startswith(script) and path[len(script) : len(script) + 1] == "/":
            environ["PATH_INFO"] = path[len(script) :]
        else:
            environ["SCRIPT_NAME"] = ""
            environ["PATH_INFO"] = path
        return
    if path_info is None:
        path = _request_path(environ)
    else:
        path = environ.get("SCRIPT_NAME", "") + path_info
    if script_name and (path == script_name or path.startswith(script_name + "/")):
        environ["SCRIPT_NAME"] = script_name
        environ["PATH_INFO"] = path[len(script_name) :]
    else:
        environ["SCRIPT_NAME"] = ""
        environ["PATH_INFO"] = path


def _apache_proxy_path(filename: str) -> str | None:
    """The backend-relative path in Apache's ``proxy:SCHEME://AUTHORITY/path``."""
    if not filename.startswith("proxy:"):
        return None
    rest = filename.partition("://")[2]
    slash = rest.find("/")
    if slash < 0:
        return None
    path = rest[slash:]
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
    return path


def _request_path(environ: dict[str, Any]) -> str:
    uri: str = environ.get("REQUEST_URI") or environ.get("DOCUMENT_URI") or ""
    path = uri.partition("?")[0]
    if "%" in path:
        path = unquote_to_bytes(path).decode("latin-1")
    return path


def _host_port(host: str) -> tuple[str, str]:
    """``example.org:8080`` -> ``("example.org", "8080")``;
    ``[::1]:80`` -> ``("[::1]", "80")``; no port -> ``""``."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else ""
    name, _, port = host.partition(":")
    return name, port


class WSGIGateway:
    """Runs one request of ``app`` per call; the pool's target."""

    def __init__(self, app: WSGIApp, config: Config) -> None:
        self.app = app
        self.debug = config.debug
        self.script_name = config.script_name
        self.trusted = AddressList(config.forwarded_allow_ips)
        self.errors = ErrorStream()
        self.base: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": config.threads > 1,
            "wsgi.multiprocess": config.workers > 1,
            "wsgi.run_once": False,
            "wsgi.errors": self.errors,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
        }

    def environ(self, stream: ResponseStream) -> dict[str, Any]:
        """The CGI variables of the request completed into a WSGI environ."""
        request = stream.request
        environ: dict[str, Any] = request.cgi
        peer = stream.peer
        if FORWARDED in peer:  # over HTTP from a trusted proxy
            apply_forwarded(environ, self.trusted)
        # (str locals: plain str operations when compiled, where the
        # environ's values are Any)
        https: str = environ.get("HTTPS", "")
        scheme: str = (
            "https"
            if https and https.lower() in ("on", "1")
            else environ.get("REQUEST_SCHEME", "http")
        )
        if not environ.get("SERVER_NAME"):
            # Over HTTP no front server names the server, and nginx sends ""
            # from a server block without server_name (PEP 3333: never
            # empty): the Host the client asked for does, port and all.  The
            # socket's own address (in the peer values below) is only the
            # fallback: behind a proxy it is dumbwaiter's port, and a URL
            # rebuilt from it would be wrong.
            environ.pop("SERVER_NAME", None)
            name, port = _host_port(environ.get("HTTP_HOST", ""))
            if name:
                environ["SERVER_NAME"] = name
                default = "443" if scheme == "https" else "80"
                environ.setdefault(
                    "SERVER_PORT", port if port.isascii() and port.isdigit() else default
                )
        for key, value in peer.items():
            environ.setdefault(key, value)
        environ.pop(FORWARDED, None)  # ours, or a front server's forgery
        environ.update(self.base)
        environ["wsgi.input"] = request.input
        length = request.body.size
        declared: str = environ.get("CONTENT_LENGTH", "0")
        if length or declared not in ("", "0"):
            # The body was received whole: its real length is the one to
            # trust (front servers may send -1 or nothing when streaming).
            environ["CONTENT_LENGTH"] = str(length)
        environ["wsgi.url_scheme"] = scheme
        fix_paths(environ, self.script_name)
        environ.setdefault("REQUEST_METHOD", "GET")
        environ.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
        server_name: str = environ.get("SERVER_NAME", "")
        if (
            ":" in server_name
            and server_name.count(":") == 1
            and server_name.rpartition(":")[2].isdigit()
        ):
            # HAProxy's fcgi-app sends the Host header, port and all.
            environ["SERVER_NAME"] = server_name.rpartition(":")[0]
        environ.setdefault("SERVER_NAME", "localhost")  # no Host, no socket address
        environ.setdefault("SERVER_PORT", "443" if scheme == "https" else "80")
        if request.role is not Role.RESPONDER:
            environ["dumbwaiter.fcgi_role"] = request.role.name
            if request.data_input is not None:
                environ["dumbwaiter.fcgi_data"] = request.data_input
        return environ

    def __call__(self, stream: ResponseStream) -> None:
        environ = self.environ(stream)
        _Call(stream, self.debug).run(self.app, environ)


class _Call:
    """The state of one application call: start_response, write, the result."""

    __slots__ = (
        "debug",
        "environ",
        "finished",
        "head",
        "headers",
        "length",
        "sent",
        "status",
        "stream",
        "written",
    )

    def __init__(self, stream: ResponseStream, debug: bool) -> None:
        self.stream = stream
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
        if status not in _VALID_STATUS:
            if not _STATUS.match(status):
                raise ValueError(f"bad status line {status!r}")
            if len(_VALID_STATUS) < _VALID_MAX:
                _VALID_STATUS.add(status)
        length = -1
        checked: list[tuple[str, str]] = []
        for header in headers:
            if type(header) is not tuple or len(header) != 2:
                raise TypeError(f"a header must be a (name, value) tuple, not {header!r}")
            name, value = header
            if type(name) is not str:
                raise ValueError(f"bad header name {name!r}")
            if name not in _VALID_NAMES:
                if not _TOKEN.match(name):
                    raise ValueError(f"bad header name {name!r}")
                if len(_VALID_NAMES) < _VALID_MAX:
                    _VALID_NAMES.add(name)
            if type(value) is not str:
                raise ValueError(f"bad value for header {name}: {value!r}")
            if value not in _VALID_VALUES:
                if _BAD_VALUE.search(value):
                    raise ValueError(f"bad value for header {name}: {value!r}")
                if len(value) <= _VALUE_CACHED and len(_VALID_VALUES) < _VALID_MAX:
                    _VALID_VALUES.add(value)
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
            self.stream.start(self.status, self.headers, data, False)
        elif not self.stream.write(data):
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
            self.stream.end()
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
                stream = self.stream
                for chunk in result:
                    if chunk:
                        self.write(chunk)
                    if stream.cancelled:
                        break
                self.finish()
        except ClientDisconnected:
            self.finished = True
            self.stream.end()
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
            if not self.finished:  # unreachable; never leave the stream open
                self.finished = True
                self.stream.abort()

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
        self.stream.start(self.status, self.headers, body, True)

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
        self.stream.start(self.status, self.headers, b"", False)
        if not self.stream.sendfile(filelike, offset, count):
            if self.stream.cancelled:
                self.finished = True
                self.stream.end()
                return True
            filelike.seek(offset)
            for block in wrapper:
                self.write(block)
        self.written = self.length
        self.finish()
        return True

    def finish(self) -> None:
        if self.stream.cancelled:
            self.finished = True
            self.stream.end()
            return
        if not self.sent:
            if self.status is None:
                raise AssertionError("the application returned without calling start_response()")
            if self.length > 0 and not self.head:
                raise ValueError(f"Content-Length is {self.length} but the body is empty")
            self.sent = self.finished = True
            self.stream.start(self.status, self.headers, b"", True)
            return
        if 0 <= self.written < self.length and not self.head:
            raise ValueError(
                f"Content-Length is {self.length} but the body has {self.written} bytes"
            )
        self.finished = True
        self.stream.end()

    def fail(self) -> None:
        """An exception escaped the application: 500 if we still can, else abort."""
        self.log_error("error in the application")
        if self.finished:
            return
        self.finished = True
        if self.sent:
            self.stream.abort()
            return
        if self.debug:
            body = traceback.format_exc().encode("utf-8", "replace")
        else:
            body = b"500 Internal Server Error\n"
        self.sent = True
        self.stream.start(
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
