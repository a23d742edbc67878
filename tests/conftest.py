"""Fixtures that tests in more than one folder use; the helpers that are not
fixtures are in the support modules beside this file."""

from __future__ import annotations

import pathlib

import pytest

# The support modules that hold test code (asserts): rewritten as test modules
# are, so that a failing assert there says what it compared.
pytest.register_assert_rewrite("clients", "fake_exchange", "faults", "sans_io", "watching")


# The --reload watcher's tests (unit/ and functional/test_reloader.py): a folder of sources.
@pytest.fixture
def tree(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "app.py").write_text("VERSION = 1\n")
    (tmp_path / "old.py").write_text("gone = True\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "views.py").write_text("")
    return tmp_path
