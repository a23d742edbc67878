"""The access log: one line per response, in a format log tools parse.

Formats (``--access-log-format``):

``common``
    The Common Log Format: ``host ident user [time] "request" status bytes``.
``combined``
    Common plus ``"referer" "user-agent"`` (nginx's and Apache's default).
``json``
    One JSON object per line with every field below.
anything else
    A template with ``{field}`` placeholders, e.g.
    ``'{remote_addr} {method} {uri} {status} {request_time:.3f}'``.

Fields: ``remote_addr``, ``remote_user``, ``time`` (common-log time),
``time_iso``, ``method``, ``uri``, ``protocol`` (HTTP version),
``status`` (int), ``bytes`` (body bytes sent), ``referer``, ``user_agent``,
``host``, ``listener`` (e.g. ``fastcgi unix:/run/app.sock``), ``gateway``
(``fastcgi``, ``scgi``, ``uwsgi`` or ``http``), ``worker`` (pid),
``request_time`` (seconds from the request's head to the response's end),
``queue_time`` (seconds waiting for a thread), ``connection`` (its number
in this worker).

Lines are written into a buffer (by the event loop, and by application
threads serving connections directly: under a lock) that is flushed once a
second and when the worker stops, so logging costs no system call per
request.  Each flush is one ``write`` to a file opened ``O_APPEND``, so the
workers of a master share one file without tearing lines.  ``-`` is
standard output.  SIGUSR1 reopens the file (logrotate's
``postrotate``: ``kill -USR1 $(cat /run/myapp.pid)``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["FORMATS", "AccessLog"]

COMMON = '{remote_addr} - {remote_user} [{time}] "{method} {uri} {protocol}" {status} {bytes_clf}'
COMBINED = COMMON + ' "{referer}" "{user_agent}"'
FORMATS = {"common": COMMON, "combined": COMBINED}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class AccessLog:
    """Formats and writes access log lines for one worker."""

    def __init__(self, path: str, fmt: str = "combined") -> None:
        self.path = path
        self.format = fmt
        self._template = FORMATS.get(fmt, fmt)
        self._json = fmt == "json"
        self._fd = -1
        self._lines: list[str] = []
        self._lock = threading.Lock()
        #: The worker writing (set again in each worker after the fork).
        self.pid = os.getpid()
        self._clock: Callable[[], float] = time.time
        self.open()

    def open(self) -> None:
        if self.path == "-":
            self._fd = 1
        else:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
            )

    def reopen(self) -> None:
        """After logrotate moved the file (SIGUSR1)."""
        self.flush()
        if self._fd > 2:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self.open()

    def write(
        self,
        environ: Mapping[str, Any],
        status: int,
        sent: int,
        *,
        listener: str,
        gateway: str,
        connection: str,
        request_time: float,
        queue_time: float,
    ) -> None:
        now = self._clock()
        fields = {
            "remote_addr": environ.get("REMOTE_ADDR") or "-",
            "remote_user": environ.get("REMOTE_USER") or "-",
            "time": _clf_time(now),
            "time_iso": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "method": environ.get("REQUEST_METHOD", "-"),
            "uri": _uri(environ),
            "protocol": environ.get("SERVER_PROTOCOL", "-"),
            "status": status,
            "bytes": sent,
            "bytes_clf": sent or "-",
            "referer": environ.get("HTTP_REFERER") or "-",
            "user_agent": environ.get("HTTP_USER_AGENT") or "-",
            "host": environ.get("HTTP_HOST") or "-",
            "listener": listener,
            "gateway": gateway,
            "worker": self.pid,
            "request_time": request_time,
            "queue_time": queue_time,
            "connection": connection,
        }
        if self._json:
            del fields["bytes_clf"]
            line = json.dumps(fields, separators=(",", ":"))
        else:
            line = self._template.format_map(fields)
        line = line.replace("\n", " ") + "\n"
        with self._lock:
            self._lines.append(line)

    def flush(self) -> None:
        if not self._lines or self._fd < 0:
            return
        with self._lock:  # application threads may append meanwhile
            lines, self._lines = self._lines, []
        data = "".join(lines).encode("utf-8", "replace")
        with contextlib.suppress(OSError):  # a full disk must not stop the server
            while data:
                data = data[os.write(self._fd, data) :]

    def close(self) -> None:
        self.flush()
        if self._fd > 2:
            os.close(self._fd)
        self._fd = -1


def check_format(fmt: str) -> None:
    """Raise ValueError naming an unknown field of a custom format."""
    if fmt == "json" or fmt in FORMATS:
        return
    text_fields = (
        "remote_addr remote_user time time_iso method uri protocol bytes_clf referer "
        "user_agent host listener gateway connection"
    )
    sample: dict[str, object] = dict.fromkeys(text_fields.split(), "x")
    sample.update(status=200, bytes=0, worker=1, request_time=0.0, queue_time=0.0)
    try:
        fmt.format_map(sample)
    except KeyError as exc:
        raise ValueError(f"unknown field {exc.args[0]!r} in the access log format") from None
    except (ValueError, IndexError) as exc:
        raise ValueError(f"bad access log format: {exc}") from None


def _uri(environ: Mapping[str, Any]) -> str:
    uri = environ.get("REQUEST_URI")
    if uri:
        return str(uri)
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path or "/"


def _clf_time(now: float) -> str:
    local = time.localtime(now)
    offset = local.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset), 60)
    return (
        f"{local.tm_mday:02d}/{MONTHS[local.tm_mon - 1]}/{local.tm_year}:"
        f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"
    )
