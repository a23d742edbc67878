"""``dumbwaiter migrate``: a uWSGI or gunicorn configuration as a
``dumbwaiter.toml``.

    dumbwaiter migrate uwsgi.ini            # [uwsgi] section of an ini file
    dumbwaiter migrate gunicorn.conf.py     # run as gunicorn runs it
    dumbwaiter migrate --environment        # UWSGI_* and GUNICORN_CMD_ARGS

Each translated key is printed with a comment naming the key it came from;
every key that has no translation is listed at the end with the reason, and
the nearest dumbwaiter feature where there is one.  The output is a file
that ``--config`` reads (``dumbwaiter --check-config`` checks it).
"""

from __future__ import annotations

import argparse
import os
import runpy
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .configfile import toml_text
from .hooks import HOOK_NAMES

__all__ = ["Translation", "from_gunicorn", "from_uwsgi", "main", "read_ini"]


@dataclass
class Translation:
    """What a configuration becomes: ``(key, value, source)`` lines and
    ``(source, reason)`` for what has no translation."""

    origin: str
    keys: list[tuple[str, Any, str]] = field(default_factory=list)
    untranslated: list[tuple[str, str]] = field(default_factory=list)

    def set(self, key: str, value: Any, source: str) -> None:
        """Set ``key`` (again: the later one wins, as in both servers)."""
        self.keys = [entry for entry in self.keys if entry[0] != key]
        self.keys.append((key, value, source))

    def value(self, key: str) -> Any:
        """What ``key`` was set to, or None."""
        return next((value for name, value, _ in self.keys if name == key), None)

    def skip(self, source: str, reason: str) -> None:
        self.untranslated.append((source, reason))

    def render(self) -> str:
        out = [
            f"# dumbwaiter.toml, translated from {self.origin} by `dumbwaiter migrate`.",
            "# Check it, then: dumbwaiter --check-config",
            "",
        ]
        rows = [(f"{key} = {literal(value)}", source) for key, value, source in self.keys]
        width = max((len(line) for line, _ in rows if len(line) <= 50), default=0)
        out += [f"{line:<{width}}  # {source}" for line, source in rows]
        if self.untranslated:
            out += ["", "# Not translated:"]
            out += [f"# {source}: {reason}" for source, reason in self.untranslated]
        return "\n".join(out) + "\n"


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    return toml_text(str(value))


# -- uWSGI ---------------------------------------------------------------------------
def read_ini(text: str, section: str = "uwsgi") -> list[tuple[str, str]]:
    """The ``key = value`` lines of ``[section]``, in order, repeated keys
    kept (uWSGI repeats ``socket``, ``static-map``; configparser cannot)."""
    pairs: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current == section:
            key, _, value = line.partition("=")
            pairs.append((key.strip().replace("_", "-"), value.strip()))
    return pairs


def listener(value: str) -> str:
    """uWSGI's socket value as a dumbwaiter address (a path is a unix socket)."""
    if value.startswith(("/", "./", "@")) or ":" not in value:
        return "unix:" + value
    return value


#: uWSGI keys whose value is a number in dumbwaiter's unit: key -> setting.
UWSGI_NUMBERS = {
    "processes": "workers",
    "workers": "workers",
    "threads": "threads",
    "harakiri": "timeout",
    "max-requests": "max_requests",
    "max-requests-delta": "max_requests_jitter",
    "reload-on-rss": "max_rss",
    "evil-reload-on-rss": "max_rss",
    "max-worker-lifetime": "max_lifetime",
    "max-worker-lifetime-delta": "max_lifetime_jitter",
    "buffer-size": "max_header_bytes",
    "post-buffering": "spool_threshold",
    "limit-post": "max_body",
    "listen": "backlog",
}
#: uWSGI keys taken as they are: key -> setting.
UWSGI_TEXTS = {"chdir": "chdir", "uid": "user", "gid": "group", "pidfile": "pid"}
#: Listener keys: key -> dumbwaiter protocol.
UWSGI_SOCKETS = {
    "socket": "uwsgi",
    "uwsgi-socket": "uwsgi",
    "http-socket": "http",
    "fastcgi-socket": "fastcgi",
    "scgi-socket": "scgi",
}
#: What needs no key in dumbwaiter, or has none, and why.
UWSGI_REASONS = {
    "master": "dumbwaiter always runs a master over its workers (--no-master to run without)",
    "vacuum": "dumbwaiter always removes the unix socket files it made",
    "die-on-term": "SIGTERM is always a graceful stop in dumbwaiter",
    "enable-threads": "threads are always enabled",
    "single-interpreter": "dumbwaiter runs one interpreter per worker",
    "plugins": "Python is built in",
    "plugin": "Python is built in",
    "need-app": "dumbwaiter never serves without its app: a failed import stops the start",
    "strict": "an unknown dumbwaiter.toml key is always an error",
    "thunder-lock": "not needed: the workers' threads take turns to accept",
    "lazy-apps": "dumbwaiter loads the app in each worker unless --preload",
    "cheaper-initial": "elastic workers start at the minimum (workers)",
    "cheaper-step": "elastic workers change one at a time",
    "cheaper-algo": "one policy: uWSGI's busyness, the backlog counted as load "
    "(docs/processes.md); workers_idle sets how long before one is retired",
    "cheaper-overload": "a worker is added after 2s with every thread busy",
    "static-map": "let the front server serve it: its alias/location block "
    "(see docs/migrating-from-uwsgi.md)",
    "static-map2": "let the front server serve it (see docs/migrating-from-uwsgi.md)",
    "home": "run dumbwaiter from that virtualenv (its bin/dumbwaiter)",
    "virtualenv": "run dumbwaiter from that virtualenv (its bin/dumbwaiter)",
    "venv": "run dumbwaiter from that virtualenv (its bin/dumbwaiter)",
    "env": "set it in the environment (systemd Environment=, or the container's)",
    "disable-logging": "dumbwaiter logs no requests unless access_log is set",
    "http": "uWSGI's HTTP router process: serve HTTP itself with http = [ADDR]",
    "memory-report": "--status shows each worker's memory",
    "py-autoreload": "reload = true watches the sources (a development setting)",
    "wsgi-file": "",  # handled: named here for the list of known keys
}


def from_uwsgi(pairs: Iterable[tuple[str, str]], origin: str) -> Translation:
    """The translation of uWSGI's ``key = value`` pairs, in order."""
    out = Translation(origin)
    sockets: dict[str, list[str]] = {}
    module = callable_ = named_by = ""
    cheaper: tuple[int, str] | None = None
    for key, value in pairs:
        source = f"{origin}: {key} = {value}"
        if key in UWSGI_SOCKETS:
            protocol = UWSGI_SOCKETS[key]
            sockets.setdefault(protocol, []).append(listener(value))
            out.set(protocol, sockets[protocol], source)
        elif key == "cheaper" and (number := number_of(value)):
            cheaper = (number, source)
        elif key in UWSGI_NUMBERS:
            number = number_of(value)
            if number is None:
                out.skip(source, "not a number dumbwaiter can read")
            else:
                out.set(UWSGI_NUMBERS[key], number, source)
        elif key in UWSGI_TEXTS:
            out.set(UWSGI_TEXTS[key], value, source)
        elif key == "chmod-socket":
            out.set("socket_mode", value or "666", source)
        elif key == "chown-socket":
            owner, _, group = value.partition(":")
            out.set("socket_owner", owner, source)
            if group:
                out.set("socket_group", group, source)
        elif key in ("module", "wsgi"):
            module, _, named = value.partition(":")
            callable_ = named or callable_
            named_by = f"{key} = {value}"
            out.set("app", f"{module}:{callable_ or 'application'}", source)
        elif key == "callable":
            callable_ = value
            if module:
                out.set("app", f"{module}:{value}", f"{origin}: {named_by}, {key} = {value}")
        elif key == "wsgi-file":
            name = os.path.splitext(os.path.basename(value))[0]
            module, named_by = name, f"{key} = {value}"
            out.set("app", f"{name}:{callable_ or 'application'}", source)
            if os.path.dirname(value) not in ("", "."):
                out.skip(
                    source,
                    f"the app is imported as the module {name!r}: "
                    f"set chdir to {os.path.dirname(value)!r} if it is not there",
                )
        elif key == "logto":
            out.set("error_log", value, source)
        elif key in ("req-logger", "logger") and value.startswith("file:"):
            out.set("access_log", value.removeprefix("file:"), source)
        elif key == "stats":  # (its JSON is at /status.json, beside a live page)
            out.set("status", value, source)
        elif key in ("py-autoreload",) and value not in ("0", "false"):
            out.set("reload", True, source)
        elif key in ("static-map", "static-map2") and "=" in value:
            url, _, folder = value.partition("=")
            out.skip(
                source,
                "the front server serves it: dumbwaiter config FRONT ... "
                f"--static {url.rstrip('/')}/={folder} prints its block",
            )
        elif key in UWSGI_REASONS:
            out.skip(source, UWSGI_REASONS[key])
        else:
            out.skip(source, "no dumbwaiter equivalent known")
    if cheaper is not None:  # elastic: from cheaper up to processes
        number, source = cheaper
        out.set("max_workers", out.value("workers") or number, source + " (up to processes)")
        out.set("workers", number, source)
    return out


def number_of(value: str) -> int | None:
    """A uWSGI number (``4``, ``64k`` is not its syntax, but a plain int is)."""
    try:
        return int(value)
    except ValueError:
        return None


# -- gunicorn ------------------------------------------------------------------------
#: gunicorn settings -> dumbwaiter settings, taken as they are.
GUNICORN_SAME = {
    "workers": "workers",
    "threads": "threads",
    "timeout": "timeout",
    "graceful_timeout": "graceful_timeout",
    "max_requests": "max_requests",
    "max_requests_jitter": "max_requests_jitter",
    "keepalive": "keepalive_timeout",
    "user": "user",
    "group": "group",
    "chdir": "chdir",
    "pidfile": "pid",
    "backlog": "backlog",
    "limit_request_line": "max_request_line",
    "limit_request_fields": "max_header_count",
    "preload_app": "preload",
    "reload": "reload",
    "loglevel": "log_level",
    "wsgi_app": "app",
}
GUNICORN_REASONS = {
    "worker_class": "dumbwaiter's workers are asynchronous with a thread pool (gthread's model)",
    "worker_connections": "max_connections bounds a worker's connections",
    "daemon": "run dumbwaiter under systemd or another supervisor",
    "proc_name": "the processes keep Python's name",
    "umask": "socket_mode sets the unix sockets' mode",
    "raw_env": "set it in the environment (systemd Environment=)",
    "limit_request_field_size": "max_header_bytes bounds the whole header section",
    "bind": "",  # handled
}
#: gunicorn's access log atoms -> dumbwaiter's fields.
ATOMS = {
    "h": "{remote_addr}",
    "l": "-",
    "u": "{remote_user}",
    "t": "[{time}]",
    "r": "{method} {uri} {protocol}",
    "m": "{method}",
    "U": "{uri}",
    "H": "{protocol}",
    "s": "{status}",
    "B": "{bytes}",
    "b": "{bytes_clf}",
    "f": "{referer}",
    "a": "{user_agent}",
    "L": "{request_time}",
    "p": "{worker}",
}
GUNICORN_COMBINED = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def access_format(text: str) -> str | None:
    """gunicorn's ``access_log_format`` as dumbwaiter's, or None."""
    if text == GUNICORN_COMBINED:
        return "combined"
    out, rest = [], text.replace("{", "{{").replace("}", "}}")
    while "%(" in rest:
        before, _, after = rest.partition("%(")
        atom, _, rest = after.partition(")s")
        if atom not in ATOMS:
            return None
        out += [before, ATOMS[atom]]
    return "".join([*out, rest])


def from_gunicorn(settings: Mapping[str, Any], origin: str, *, hooks: str = "") -> Translation:
    """The translation of gunicorn's settings (the config file's names);
    ``hooks``: what names the module its hook functions are in."""
    out = Translation(origin)
    for name, value in settings.items():
        source = f"{origin}: {name} = {value!r}"
        if callable(value) and name in HOOK_NAMES:
            out.set("hooks", hooks, f"{origin}: its {', '.join(sorted(hooks_in(settings)))}")
        elif name == "bind":
            addresses = [value] if isinstance(value, str) else list(value)
            out.set(
                "http",
                [a if a.startswith("unix:") or ":" in a else f"{a}:8000" for a in addresses],
                source,
            )
        elif name in GUNICORN_SAME:
            out.set(GUNICORN_SAME[name], value, source)
        elif name == "accesslog":
            out.set("access_log", value, source)
        elif name == "errorlog":
            if value != "-":
                out.set("error_log", value, source)
        elif name == "access_log_format":
            converted = access_format(value)
            if converted is None:
                out.skip(source, "an atom with no dumbwaiter field (docs/operations.md lists them)")
            else:
                out.set("access_log_format", converted, source)
        elif name == "forwarded_allow_ips":
            items = value.split(",") if isinstance(value, str) else list(value)
            out.set("forwarded_allow_ips", [item.strip() for item in items], source)
        elif name in GUNICORN_REASONS:
            out.skip(source, GUNICORN_REASONS[name])
        elif not callable(value):
            out.skip(source, "no dumbwaiter equivalent known")
    return out


def hooks_in(settings: Mapping[str, Any]) -> list[str]:
    return [name for name, value in settings.items() if name in HOOK_NAMES and callable(value)]


def gunicorn_file(path: str) -> dict[str, Any]:
    """The settings a gunicorn config file sets: it runs, as gunicorn runs it."""
    names = runpy.run_path(path)
    return {k: v for k, v in names.items() if not k.startswith("_") and not isinstance(v, type(os))}


def gunicorn_args(text: str) -> dict[str, Any]:
    """``GUNICORN_CMD_ARGS``'s settings (the options people put there)."""
    parser = argparse.ArgumentParser(add_help=False)
    flags: list[tuple[Sequence[str], str, Callable[[str], Any]]] = [
        (("-b", "--bind"), "bind", str),
        (("-w", "--workers"), "workers", int),
        (("--threads",), "threads", int),
        (("-t", "--timeout"), "timeout", int),
        (("--graceful-timeout",), "graceful_timeout", int),
        (("--max-requests",), "max_requests", int),
        (("--max-requests-jitter",), "max_requests_jitter", int),
        (("--keep-alive",), "keepalive", int),
        (("--access-logfile",), "accesslog", str),
        (("--error-logfile", "--log-file"), "errorlog", str),
        (("--log-level",), "loglevel", str),
        (("-u", "--user"), "user", str),
        (("-g", "--group"), "group", str),
        (("--forwarded-allow-ips",), "forwarded_allow_ips", str),
        (("--chdir",), "chdir", str),
        (("-p", "--pid"), "pidfile", str),
        (("--backlog",), "backlog", int),
    ]
    for options, dest, kind in flags:
        action = "append" if dest == "bind" else "store"
        parser.add_argument(*options, dest=dest, type=kind, action=action)
    parser.add_argument("--preload", dest="preload_app", action="store_true", default=None)
    parser.add_argument("--reload", dest="reload", action="store_true", default=None)
    known, unknown = parser.parse_known_args(shlex.split(text))
    settings = {k: v for k, v in vars(known).items() if v is not None}
    if unknown:
        settings["(not read)"] = " ".join(unknown)
    return settings


# -- the command ---------------------------------------------------------------------
def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dumbwaiter migrate",
        description="Print a dumbwaiter.toml translated from a uWSGI or gunicorn config.",
    )
    parser.add_argument("file", nargs="?", help="a uwsgi.ini, or a gunicorn.conf.py")
    parser.add_argument(
        "--environment",
        action="store_true",
        help="translate the UWSGI_* variables and GUNICORN_CMD_ARGS of the environment",
    )
    args = parser.parse_args(argv)
    try:
        translations = translate(args.file, os.environ if args.environment else {})
    except (OSError, SyntaxError, ValueError) as exc:
        print(f"dumbwaiter migrate: error: {exc}", file=sys.stderr)
        return 2
    if not translations:
        print("dumbwaiter migrate: error: give a file, or --environment", file=sys.stderr)
        return 2
    print("\n".join(t.render() for t in translations), end="")
    return 0


def translate(path: str | None, environ: Mapping[str, str]) -> list[Translation]:
    found = []
    if path is not None:
        if path.endswith(".py"):
            hooks = path if hooks_in(gunicorn_file(path)) else ""
            found.append(from_gunicorn(gunicorn_file(path), path, hooks=hooks))
        else:
            with open(path, encoding="utf-8") as file:
                pairs = read_ini(file.read())
            if not pairs:
                raise ValueError(f"{path}: no [uwsgi] section")
            found.append(from_uwsgi(pairs, path))
    uwsgi = [
        (name.removeprefix("UWSGI_").lower().replace("_", "-"), value)
        for name, value in environ.items()
        if name.startswith("UWSGI_")
    ]
    if uwsgi:
        found.append(from_uwsgi(uwsgi, "the UWSGI_* variables"))
    if environ.get("GUNICORN_CMD_ARGS"):
        found.append(
            from_gunicorn(gunicorn_args(environ["GUNICORN_CMD_ARGS"]), "GUNICORN_CMD_ARGS")
        )
    return found
