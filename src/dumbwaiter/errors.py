"""Exceptions the server raises into application code.

A leaf module, and never compiled: an application may catch these or
subclass them, and ``ClientDisconnected`` subclasses ``OSError``, which a
compiled (mypyc) class cannot.
"""

from __future__ import annotations

__all__ = ["ClientDisconnected"]


class ClientDisconnected(OSError):
    """The client is gone: raised from the ``write()`` callable, and from
    ``wsgi.input`` when the request body stops short.  The app may catch it."""
