"""Where the settings come from, and where each one came from.

Four sources, each over the one before: the table's defaults
(:class:`~dumbwaiter.config.Config`), a TOML file, ``DUMBWAITER_<NAME>``
variables, the command line.  The file is ``--config FILE`` (or
``DUMBWAITER_CONFIG``), else ``dumbwaiter.toml`` in the working directory,
else the ``[tool.dumbwaiter]`` table of ``pyproject.toml`` there.  Its keys
are the settings' names (``-`` or ``_``), plus ``app``.

:func:`load` returns the merged :class:`Settings` with each value's origin
(``default``, ``FILE:LINE``, the variable, the option), which
``--print-config`` shows and every error names: a bad value is reported
against the source that set it, before anything binds.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import (
    Config,
    ConfigError,
    check_value,
    env_name,
    flag_of,
    parse_value,
    settings,
    type_name,
)
from .protocols import Role

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    import tomli as tomllib

__all__ = ["FILE_NAME", "Settings", "find_file", "load", "render"]

#: The file looked for in the working directory.
FILE_NAME = "dumbwaiter.toml"
#: The variable that names the file (as ``--config`` does).
CONFIG_VARIABLE = "DUMBWAITER_CONFIG"
#: The key that names the application (the command line's MODULE:CALLABLE).
APP_KEY = "app"
DEFAULT = "default"


@dataclass
class Settings:
    """The merged settings: the app's spec, the config, and where each value
    came from (``origins`` by setting name, and ``app``)."""

    spec: str | None
    config: Config
    origins: dict[str, str] = field(default_factory=dict)
    #: The file read (None: none), and the table in it ("" for the top level).
    path: str | None = None
    table: str = ""

    def origin(self, name: str) -> str:
        return self.origins.get(name, DEFAULT)


def find_file(explicit: str | None, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The file to read and its table: ``--config``, the variable,
    ``dumbwaiter.toml``, or a ``pyproject.toml`` that has
    ``[tool.dumbwaiter]``; None when there is none."""
    named = explicit or environ.get(CONFIG_VARIABLE)
    if named:
        return named, "tool.dumbwaiter" if os.path.basename(named) == "pyproject.toml" else ""
    if os.path.isfile(FILE_NAME):
        return FILE_NAME, ""
    if os.path.isfile("pyproject.toml"):
        try:
            with open("pyproject.toml", "rb") as file:
                document = tomllib.load(file)
        except (OSError, tomllib.TOMLDecodeError):
            return None  # not ours to judge: it is only looked at
        if isinstance(document.get("tool"), dict) and "dumbwaiter" in document["tool"]:
            return "pyproject.toml", "tool.dumbwaiter"
    return None


def read_file(path: str, table: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The keys of ``table`` in the TOML file ``path`` (all of it for ""),
    and the line each is on."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values: Any = document
    for part in table.split(".") if table else ():
        values = values.get(part, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: [{table}] is not a table")
    return values, key_lines(raw.decode("utf-8"), table)


#: A ``[table]`` header, and a ``key =`` line (bare or quoted key).
TABLE_LINE = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
KEY_LINE = re.compile(r"""\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=""")


def key_lines(text: str, table: str) -> dict[str, int]:
    """Where each key of ``table`` is set (the line of its ``key =``), for
    the messages: tomllib does not say."""
    lines: dict[str, int] = {}
    current = ""
    depth = 0  # inside a multi-line array
    for number, line in enumerate(text.splitlines(), 1):
        if depth == 0 and (header := TABLE_LINE.match(line)):
            current = header.group(1).replace(" ", "").replace('"', "")
            continue
        if depth == 0 and current == table and (key := KEY_LINE.match(line)):
            lines.setdefault(next(g for g in key.groups() if g), number)
        depth = max(0, depth + line.count("[") - line.count("]"))
    return lines


def normal(key: str) -> str:
    return key.replace("-", "_")


def from_file(
    values: Mapping[str, Any], lines: Mapping[str, int], path: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The file's settings as the table's values, with their origins; an
    unknown key, a wrong type or a bad value is a :class:`ConfigError`
    naming the file, its line and the key."""
    fields = {f.name: f for f in settings()}
    known = [*fields, APP_KEY]
    result: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, value in values.items():
        name = normal(key)
        where = f"{path}:{lines[key]}" if key in lines else path
        if name == APP_KEY:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: app: expected 'module:callable', got {shown(value)}")
            result[APP_KEY] = value
            origins[APP_KEY] = where
            continue
        if name not in fields:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
        f = fields[name]
        result[name] = toml_value(f, value, f"{where}: {key}")
        origins[name] = where
    return result, origins


def toml_value(f: dataclasses.Field[Any], value: Any, where: str) -> Any:
    """A value from the file as the setting's type.  Strings go through the
    setting's own parser (``"16M"``, ``"auto"``, ``"660"``), as on the
    command line; otherwise the TOML type must be the setting's."""
    kind = type_name(f).removesuffix(" | None")
    if isinstance(value, str) and (kind == "str" or f.metadata.get("parse") is not None):
        return parse_value(f, value, where)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {shown(value)}")
    if f.name == "socket_mode":  # (660, or 0o660? only the text is clear)
        raise ConfigError(
            f'{where}: expected an octal mode in a string ("660"), got {shown(value)}'
        )
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected a whole number, got {shown(value)}")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number of seconds, got {shown(value)}")
    if kind.startswith(("list", "frozenset")):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ConfigError(f"{where}: expected a list of strings, got {shown(value)}")
        if f.metadata.get("parse") is not None:
            return parse_value(f, ",".join(items), where)
        return list(items)
    raise ConfigError(f"{where}: expected a string, got {shown(value)}")


def shown(value: Any) -> str:
    """A value from the file, and its TOML type, for an error message."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    kind = kinds.get(type(value), "a list" if isinstance(value, list) else "a table")
    return f"{value!r} ({kind})"


def load(
    options: Mapping[str, Any],
    spec: str | None,
    environ: Mapping[str, str],
    config_path: str | None = None,
) -> Settings:
    """Merge the sources: defaults < file < environment < ``options`` (the
    command line's, by setting name: strings still to parse, or what
    argparse made of a flag or a repeated option)."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    found = find_file(config_path, environ)
    if found is not None:
        path, table = found
        file_values, lines = read_file(path, table)
        got, where = from_file(file_values, lines, path)
        values.update(got)
        origins.update(where)
    for f in settings():
        raw = environ.get(env_name(f))
        if raw is not None:
            values[f.name] = parse_value(f, raw, env_name(f))
            origins[f.name] = env_name(f)
    fields = {f.name: f for f in settings()}
    for name, raw in options.items():
        f = fields[name]
        values[name] = parse_value(f, raw) if isinstance(raw, str) else raw
        origins[name] = flag_of(f)
    if spec is not None:
        values[APP_KEY] = spec
        origins[APP_KEY] = "command line"
    if isinstance(workers := values.get("workers"), tuple):  # MIN:MAX
        values["workers"], values["max_workers"] = workers
        origins["max_workers"] = origins["workers"]
    for name, value in values.items():
        if name != APP_KEY:
            check_value(fields[name], value, described(name, origins[name]))
    app = values.pop(APP_KEY, None)
    config = Config(**values)
    try:
        config.validate()
    except ConfigError as exc:
        raise ConfigError(f"{exc}{blame(str(exc), origins)}") from None
    return Settings(app, config, origins, found[0] if found else None, found[1] if found else "")


def described(name: str, origin: str) -> str:
    """How an error names a setting: its option, variable, or file and key."""
    if origin.startswith(("--", "DUMBWAITER_")):
        return origin
    return f"{origin}: {name}"


def blame(message: str, origins: Mapping[str, str]) -> str:
    """For an error between settings (``--a and --b``): where the ones it
    names were set, when not on the command line."""
    named = re.findall(r"--([a-z][a-z0-9-]*)", message)
    places = [
        f"--{flag} from {origins[normal(flag)]}"
        for flag in dict.fromkeys(named)
        if normal(flag) in origins and not origins[normal(flag)].startswith("--")
    ]
    return f" ({'; '.join(places)})" if places else ""


# -- --print-config ------------------------------------------------------------------
def render(loaded: Settings) -> str:
    """The effective settings as TOML that :func:`load` reads back, each
    with a comment saying where it came from."""
    out = ["# dumbwaiter --print-config: the effective settings, each with its source."]
    if loaded.path:
        table = f" [{loaded.table}]" if loaded.table else ""
        out.append(f"# Read from {loaded.path}{table}.")
    out.append("")
    rows: list[tuple[str, str]] = []
    if loaded.spec is not None:
        rows.append((f"app = {toml_text(loaded.spec)}", loaded.origin(APP_KEY)))
    else:
        rows.append(("# app = (not set)", DEFAULT))
    for f in settings():
        value = getattr(loaded.config, f.name)
        literal = toml_literal(f, value)
        line = f"# {f.name} = (not set)" if literal is None else f"{f.name} = {literal}"
        rows.append((line, loaded.origin(f.name)))
    width = max(len(line) for line, _ in rows if len(line) <= 60)
    out += [f"{line:<{width}}  # {origin}" for line, origin in rows]
    return "\n".join(out) + "\n"


def toml_literal(f: dataclasses.Field[Any], value: Any) -> str | None:
    """``value`` of setting ``f`` as a TOML literal; None for "not set"."""
    if value is None:
        return None
    if f.name == "socket_mode":
        return toml_text(f"{value:o}")
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return toml_text(value)
    if isinstance(value, frozenset):  # the FastCGI roles
        names = sorted(role.name.lower() for role in value if isinstance(role, Role))
        return "[" + ", ".join(toml_text(name) for name in names) + "]"
    return "[" + ", ".join(toml_text(str(item)) for item in value) + "]"


def toml_text(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)
