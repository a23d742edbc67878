"""keep_freed_memory() leaves the operator's own malloc settings alone,
in-process.  What it does to page faults, in child processes and a real
worker, is tested in tests/functional/test_malloc.py."""

from __future__ import annotations

import pytest

from dumbwaiter.server.malloc import keep_freed_memory


def test_operator_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1048576")
    assert keep_freed_memory() is False
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert keep_freed_memory() is False
