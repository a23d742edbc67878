#!/usr/bin/env python3
"""The seed's flup script, with only the import line changed.

It was:  from flup.server.fcgi import WSGIServer
"""

import sys

from dumbwaiter.flup import WSGIServer


def myapp(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello World!\n", environ["PATH_INFO"].encode("latin-1")]


if __name__ == "__main__":
    WSGIServer(myapp, bindAddress=sys.argv[1] if len(sys.argv) > 1 else "/tmp/fcgi.sock").run()
