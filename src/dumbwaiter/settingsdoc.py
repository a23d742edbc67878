"""docs/settings.md, generated from the settings table.

    python -m dumbwaiter.settingsdoc > docs/settings.md

(tests/unit/test_settingsdoc.py fails when the page is out of date.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .config import Config, env_name, flag_of, parse_size, settings, type_name
from .configfile import toml_literal

__all__ = ["render_page"]

INTRO = """\
# Settings

Every setting, generated from the one table in `src/dumbwaiter/config.py` by
`python -m dumbwaiter.settingsdoc` (edit the table, not this page).

Each is an option on the command line, a key of the config file (`-` or `_`),
and a `DUMBWAITER_<NAME>` variable; the command line wins over the
environment, which wins over the file (docs/configuration.md).  *HUP*: whether
a reload (SIGHUP) applies a new value; the others need a restart, or an
upgrade in place (SIGUSR2).  Sizes take `k`, `M` and `G` suffixes (binary).
Besides these, the file's `app` key names the application (`MODULE:CALLABLE`).

| option | file key | variable | type | default | unit | HUP | what it does |
|---|---|---|---|---|---|---|---|
"""


def render_page() -> str:
    rows = [row(f) for f in settings()]
    return INTRO + "\n".join("| " + " | ".join(cells) + " |" for cells in rows) + "\n"


def row(f: dataclasses.Field[Any]) -> list[str]:
    default = getattr(Config(), f.name)
    shown = toml_literal(f, default)
    option = f"`{flag_of(f)}`" if f.metadata.get("cli") else "(file, variable)"
    return [
        option,
        f"`{f.name}`",
        f"`{env_name(f)}`",
        kind(f),
        f"`{shown}`" if shown is not None else "not set",
        unit(f),
        "no" if f.metadata.get("restart") else "yes",
        f.metadata["help"].replace("|", "\\|"),
    ]


def kind(f: dataclasses.Field[Any]) -> str:
    """The TOML type(s) the file's key takes."""
    name = type_name(f).removesuffix(" | None")
    if f.name == "socket_mode":
        return 'string (octal, "660")'
    if f.name == "workers":
        return 'integer, "auto" or "MIN:MAX"'
    if f.metadata.get("parse") is parse_size:
        return 'integer or string ("16M")'
    if name.startswith(("list", "frozenset")):
        return "array of strings"
    return {"bool": "boolean", "int": "integer", "float": "number", "str": "string"}[name]


def unit(f: dataclasses.Field[Any]) -> str:
    if f.metadata.get("parse") is parse_size:
        return "bytes"
    return {"S": "seconds", "MIB": "MiB", "MODE": "octal"}.get(f.metadata.get("metavar") or "", "")


if __name__ == "__main__":
    print(render_page(), end="")
