"""glibc's malloc, told to keep what a request frees for the next one.

A worker reads bodies in reads of up to 256 KiB and holds each body whole
(up to ``--spool-threshold``, 1 MiB by default) until its request ends.  With
glibc's defaults those blocks are mapped fresh and given back again request
after request: the heap's free top is trimmed past 128 KiB (the threshold
then floats), and large blocks come from ``mmap``.  Every fresh page costs a
fault and the kernel zeroing it: with 1 MiB uploads that was about half the
worker's CPU (``bench/profile.py -s fcgi-upload``: 680 -> 390 µs per MiB
with :func:`keep_freed_memory`, page faults from ~100-200 per request to 0).

The price: up to :data:`TRIM_THRESHOLD` of freed memory stays in the worker
after a burst of uploads, as with most allocators other than glibc's.  Set
``GLIBC_TUNABLES`` (``glibc.malloc.*``) or ``MALLOC_TRIM_THRESHOLD_`` /
``MALLOC_MMAP_THRESHOLD_`` to choose yourself: then this leaves malloc alone.
"""

from __future__ import annotations

import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

MiB = 1024 * 1024

#: Blocks up to this size come from the heap, so they are reused (a body held
#: whole is at most the spool threshold, 1 MiB by default).
MMAP_THRESHOLD = 2 * MiB
#: The heap's free top is given back to the kernel only past this.
TRIM_THRESHOLD = 32 * MiB

# mallopt(3) parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

OPERATOR_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")


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
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return False
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
