"""Start flup's threaded server on a unix socket: ``flup_serve.py fcgi|scgi PATH``.

flup has no command line of its own; this is its documented way to run
(``WSGIServer(app, bindAddress=...).run()``), with its default thread pool.
"""

from __future__ import annotations

import sys

from benchapp import app  # type: ignore[import-not-found]

if __name__ == "__main__":
    protocol, address = sys.argv[1], sys.argv[2]
    if protocol == "fcgi":
        from flup.server.fcgi import WSGIServer  # type: ignore[import-untyped]
    else:
        from flup.server.scgi import WSGIServer  # type: ignore[import-untyped]
    WSGIServer(app, bindAddress=address).run()
