"""The access log's formats, written in-process to a file.  The access log
and the error log of a real server (several workers sharing a file, SIGUSR1
reopening both) are tested in tests/functional/test_accesslog.py."""

from __future__ import annotations

import os
import re

from dumbwaiter.accesslog import AccessLog
from serving import short_tmpdir


def test_formats_offline() -> None:
    folder = short_tmpdir()
    environ = {
        "REMOTE_ADDR": "192.0.2.7",
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": "/a?b=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_USER_AGENT": "curl/8",
    }
    for fmt, expected in [
        ("common", '192.0.2.7 - - [X] "GET /a?b=1 HTTP/1.1" 200 12'),
        ("combined", '192.0.2.7 - - [X] "GET /a?b=1 HTTP/1.1" 200 12 "-" "curl/8"'),
        ("{gateway} {listener} {status} {bytes} {uri}", "scgi scgi :9 200 12 /a?b=1"),
    ]:
        path = os.path.join(folder, f"{len(fmt)}.log")
        log = AccessLog(path, fmt)
        log.write(
            environ,
            200,
            12,
            listener="scgi :9",
            gateway="scgi",
            connection="1",
            request_time=0.5,
            queue_time=0.0,
        )
        log.close()
        with open(path) as f:
            line = f.read().rstrip("\n")
        assert re.sub(r"\[[^]]*\]", "[X]", line) == expected
