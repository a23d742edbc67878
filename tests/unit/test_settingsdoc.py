"""docs/settings.md is what the settings table generates."""

from __future__ import annotations

import pathlib

from dumbwaiter.config import settings
from dumbwaiter.settingsdoc import render_page

PAGE = pathlib.Path(__file__).parents[2] / "docs" / "settings.md"


def test_the_settings_page_is_up_to_date() -> None:
    assert PAGE.read_text() == render_page(), (
        "docs/settings.md is out of date: python -m dumbwaiter.settingsdoc > docs/settings.md"
    )


def test_every_setting_has_a_row() -> None:
    page = render_page()
    for f in settings():
        assert f"| `{f.name}` |" in page, f.name
