"""dumbwaiter: a WSGI application server for the gateway protocols of front web servers."""

__version__ = "0.1.0.dev0"
