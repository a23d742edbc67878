"""glibc's malloc, told to keep what a request frees for the next one.

A worker reads bodies in reads of up to 256 KiB and holds each body whole
(up to ``--spool-threshold``, 1 MiB by default) until its request ends.  With
glibc's defaults those blocks are mapped fresh and given back again request
after request: the heap's free top is trimmed past 128 KiB (the threshold
then floats), and large blocks come from ``mmap``.  Every fresh page costs a
fault and the kernel zeroing it: with 1 MiB uploads that was about half the
worker's CPU (``bench/profile.py -s fcgi-upload``: 680 -> 390 µs per MiB
with :func:`keep_freed_memory`, page faults from ~100-200 per request to 0).

The trim threshold is high (:data:`TRIM_THRESHOLD`) because a worker behind
a front server holds every upload in flight at once: fifty 1 MiB uploads make
a 50 MB heap, and a 32 MiB threshold gave most of it back at each lull and
faulted it in again (``profile.py -s uwsgi-upload -c 50``: 292 -> 259 µs per
MiB).  The price, memory a burst leaves behind, is paid only while the worker
stays busy: once it is quiet, :func:`give_back_memory` (from the worker's
tick) returns it.  Set ``GLIBC_TUNABLES`` (``glibc.malloc.*``) or
``MALLOC_TRIM_THRESHOLD_`` / ``MALLOC_MMAP_THRESHOLD_`` to choose yourself:
then this leaves malloc alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "give_back_memory", "keep_freed_memory"]

MiB = 1024 * 1024

#: Blocks up to this size come from the heap, so they are reused (a body held
#: whole is at most the spool threshold, 1 MiB by default).
MMAP_THRESHOLD = 2 * MiB
#: The heap's free top is given back to the kernel only past this (and all
#: of it by give_back_memory(), once the worker is quiet).
TRIM_THRESHOLD = 256 * MiB

# mallopt(3) parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

OPERATOR_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")

#: glibc's malloc_trim, once keep_freed_memory() has tuned malloc.
_trim: Callable[[int], int] | None = None


def keep_freed_memory() -> bool:
    """Set the thresholds above, on glibc, unless the environment sets malloc's
    own; returns whether they were set.  Called once, early (``ctypes`` must
    still be readable: before the server drops its privileges); processes
    forked afterwards inherit the setting."""
    if any(name in os.environ for name in OPERATOR_SETTINGS):
        return False
    if "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return False  # musl, or no confstr name for it
    except (ValueError, OSError):
        return False
    global _trim
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (ImportError, OSError, AttributeError):
        return False
    tuned = bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    _trim = malloc_trim if tuned else None
    return tuned


def give_back_memory() -> bool:
    """Return the heap's free memory to the kernel (``malloc_trim(0)``), when
    :func:`keep_freed_memory` tuned malloc; whether it did.  For a quiet
    moment: it walks every arena."""
    if _trim is None:
        return False
    _trim(0)
    return True
