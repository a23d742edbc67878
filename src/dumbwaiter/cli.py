"""The command line: ``dumbwaiter [OPTIONS] MODULE[:CALLABLE]``, and
``dumbwaiter request ...`` (see :mod:`dumbwaiter.client`).

The options are generated from :class:`~dumbwaiter.config.Config`; nothing is
spelled here twice.  Every start-up failure prints one line on stderr and
exits non-zero: 2 for a bad option or value, 1 for anything else (an app that
cannot be imported, an address in use ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import configfile
from .asgi.lifespan import LifespanFailed
from .config import Config, ConfigError, flag_of, settings
from .configfile import FILE_NAME, Settings
from .hooks import HookError, Hooks
from .main import run, setup_logging
from .process.arbiter import AppLoadFailed
from .process.chores import ProcessError, change_directory
from .server.listeners import PROTOCOLS
from .server.sockets import ListenError, parse_address
from .server.systemd import ActivationError
from .typing import WSGIApp
from .version import __version__, build

__all__ = ["AppError", "Invocation", "build_parser", "load_app", "main", "read_args"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class AppError(AppLoadFailed):
    """The application could not be loaded."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dumbwaiter",
        description="Serve a WSGI application over FastCGI and HTTP/1.1.",
        epilog="Every option can also be set as DUMBWAITER_<NAME> in the environment, "
        "or as a key of the config file (docs/configuration.md). "
        "'dumbwaiter request --help': send one request to a server (health checks); "
        "'dumbwaiter config --help': print a front server's config; "
        "'dumbwaiter migrate --help': a uWSGI or gunicorn config as a dumbwaiter.toml.",
    )
    parser.add_argument(
        "app",
        metavar="MODULE[:CALLABLE]",
        nargs="?",
        default=None,
        help="the WSGI application (CALLABLE defaults to 'application', then 'app'); "
        "or app = ... in the config file",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"Read settings from this TOML file (default: {FILE_NAME} in the working "
        "directory, else [tool.dumbwaiter] in pyproject.toml; also DUMBWAITER_CONFIG).",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="Print the effective settings as TOML, each with where it came from, and exit.",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="Check every setting and import the app (serve nothing); exit 0, or 2 "
        "with the first problem.",
    )
    for f in settings():
        if not f.metadata.get("cli"):
            continue
        flag = flag_of(f)
        help_text = f.metadata["help"]
        if f.metadata.get("repeat"):
            parser.add_argument(
                flag,
                dest=f.name,
                action="append",
                metavar=f.metadata["metavar"],
                help=help_text,
                default=argparse.SUPPRESS,
            )
        elif f.type in ("bool", bool):
            parser.add_argument(
                flag, dest=f.name, action="store_true", help=help_text, default=argparse.SUPPRESS
            )
        else:
            default = f.default if f.default is not dataclasses.MISSING else None
            shown = f"{default:o}" if f.name == "socket_mode" else default
            parser.add_argument(
                flag,
                dest=f.name,
                metavar=f.metadata["metavar"],
                help=f"{help_text} (default: {shown})",
                default=argparse.SUPPRESS,
            )
    parser.add_argument(
        "--version", action="version", version=f"dumbwaiter {__version__} ({build()})"
    )
    return parser


@dataclasses.dataclass
class Invocation:
    """What the command line asks for: the settings from every source, how
    to read them again (SIGHUP), and whether only to print or check them."""

    loaded: Settings
    reread: Callable[[], Settings]
    print_config: bool = False
    check_config: bool = False


def read_args(argv: Sequence[str] | None) -> Invocation:
    """Parse ``argv``, with the config file and ``DUMBWAITER_*``."""
    args = vars(build_parser().parse_args(argv))
    spec = args.pop("app")
    config_path = args.pop("config")
    printing_only, checking = args.pop("print_config"), args.pop("check_config")
    environ = dict(os.environ)  # the one it started with, for SIGHUP too
    loaded = configfile.load(args, spec, environ, config_path)
    if loaded.path is not None:  # read again from the same file after a --chdir
        config_path = os.path.abspath(loaded.path)
    reread = functools.partial(configfile.load, args, spec, environ, config_path)
    return Invocation(loaded, reread, printing_only, checking)


def config_from_args(argv: Sequence[str] | None) -> tuple[str, Config]:
    """The app spec and the settings of ``argv`` (and the file, and the
    environment); a :class:`ConfigError` if no app is given anywhere."""
    loaded = read_args(argv).loaded
    return app_spec(loaded), loaded.config


def app_spec(loaded: Settings) -> str:
    if loaded.spec is None:
        where = f"app = ... in {loaded.path}" if loaded.path else f"app = ... in {FILE_NAME}"
        raise ConfigError(f"no application given: name it as MODULE:CALLABLE, or {where}")
    return loaded.spec


def load_app(spec: str) -> WSGIApp:
    """Import ``MODULE[:CALLABLE]``; raise :class:`AppError` saying what is wrong."""
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise AppError(f"no module in {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, "")  # as `python -m` does: the current directory's modules
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppError(f"cannot import module {module_name!r}: {exc}") from None
        raise AppError(f"importing {module_name!r} failed: {exc}") from None
    names = [attribute] if attribute else ["application", "app"]
    for name in names:
        target: Any = module
        try:
            for part in name.split("."):
                target = getattr(target, part)
        except AttributeError:
            continue
        if not callable(target):
            raise AppError(f"{module_name}:{name} is not callable")
        app: WSGIApp = target
        return app
    raise AppError(f"module {module_name!r} has no attribute {' or '.join(map(repr, names))}")


def import_app(spec: str) -> WSGIApp:
    """:func:`load_app`, with any error of the app's own import as one line."""
    try:
        return load_app(spec)
    except AppError:
        raise
    except Exception as exc:  # the app's own import-time error: say which, in one line
        raise AppError(f"importing {spec!r} raised {type(exc).__name__}: {exc}") from exc


def settings_again(reread: Callable[[], Settings]) -> tuple[Config, Callable[[], WSGIApp]]:
    """SIGHUP's: the settings read again, and the loader of the app they name."""
    loaded = reread()
    return loaded.config, functools.partial(import_app, app_spec(loaded))


def check_config(loaded: Settings, spec: str) -> None:
    """``--check-config``: the listeners' addresses parse, and the app (from
    ``--chdir``, as it will be) imports; one line saying so."""
    config = loaded.config
    for protocol in PROTOCOLS:
        for text in getattr(config, protocol):
            try:
                parse_address(text)
            except ListenError as exc:
                raise ConfigError(f"--{protocol}: {exc}") from None
    if config.chdir:
        try:
            change_directory(config.chdir)
        except ProcessError as exc:
            raise ConfigError(str(exc)) from None
    import_app(spec)
    Hooks.load(config.hooks)
    source = f" from {loaded.path}" if loaded.path else ""
    print(f"dumbwaiter: configuration{source} OK; the app {spec} imports")


def fail(message: str, code: int) -> NoReturn:
    print(f"dumbwaiter: error: {message}", file=sys.stderr)
    sys.exit(code)


def printing(tool: Callable[[Sequence[str]], int], args: Sequence[str]) -> int:
    """Run a tool that prints (``request``, ``config``); its exit status.

    When the reader of its output goes away (``| head -3``), it ends quietly,
    as a filter does, with no traceback.  ``request`` keeps its exit status
    (the server's answer) itself; ``config`` prints last, so a reader gone
    means it did its work: 0.
    """
    from .client import reader_gone

    try:
        try:
            code = tool(args)
        finally:  # now (--help too), not at the interpreter's exit, where it fails loudly
            sys.stdout.flush()
    except BrokenPipeError:
        reader_gone()
        code = 0
    return code


def main(argv: Sequence[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["request"]:
        from .client import main as request_main

        sys.exit(printing(request_main, args[1:]))
    if args[:1] == ["config"]:
        from .frontconf import main as config_main

        sys.exit(printing(config_main, args[1:]))
    if args[:1] == ["migrate"]:
        from .migrate import main as migrate_main

        sys.exit(printing(migrate_main, args[1:]))
    try:
        invocation = read_args(args)
        if invocation.print_config:
            print(configfile.render(invocation.loaded), end="")
            sys.exit(0)
        spec = app_spec(invocation.loaded)
        if invocation.check_config:
            check_config(invocation.loaded, spec)
            sys.exit(0)
    except (ConfigError, AppLoadFailed, HookError) as exc:
        fail(str(exc), EXIT_USAGE)
    config = invocation.loaded.config
    try:
        setup_logging(config.log_level, config.error_log)
        argv = [sys.executable, "-m", "dumbwaiter", *args]  # for an upgrade in place
        reread = functools.partial(settings_again, invocation.reread)
        code = run(config, functools.partial(import_app, spec), argv, reread=reread)
    except AppLoadFailed as exc:
        fail(str(exc), EXIT_FAILURE)
    except (ListenError, ActivationError, ProcessError, HookError, LifespanFailed) as exc:
        fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
