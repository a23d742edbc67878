"""dumbwaiter.flup for real: the seed's flup-style script behind lighttpd.
flup's WSGIServer arguments are tested in tests/unit/test_flup_compat.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from serving import TESTS, free_port, short_tmpdir

pytestmark = pytest.mark.integration


def test_the_seed_script_behind_lighttpd() -> None:
    from dumbwaiter import frontconf
    from integration.fronts import lighttpd, lighttpd_conf

    root = short_tmpdir()
    sock = os.path.join(root, "fcgi.sock")
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "apps" / "seed_flup_style.py"), sock],
        env=env,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(sock):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        port = free_port()
        config = lighttpd_conf(root, port, frontconf.lighttpd("fastcgi", f"unix:{sock}"))
        url = f"http://127.0.0.1:{port}/some/page"
        with lighttpd(root, port, config), urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.read() == b"Hello World!\n/some/page"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0
    assert not os.path.exists(sock)  # cleaned up on SIGTERM
