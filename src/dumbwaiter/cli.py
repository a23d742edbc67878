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

from .config import Config, ConfigError, flag_of, parse_value, settings
from .main import run, setup_logging
from .process.arbiter import AppLoadFailed
from .process.chores import ProcessError
from .server.sockets import ListenError
from .server.systemd import ActivationError
from .typing import WSGIApp
from .version import __version__, build

__all__ = ["AppError", "build_parser", "load_app", "main"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class AppError(AppLoadFailed):
    """The application could not be loaded."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dumbwaiter",
        description="Serve a WSGI application over FastCGI and HTTP/1.1.",
        epilog="Every option can also be set as DUMBWAITER_<NAME> in the environment. "
        "'dumbwaiter request --help': send one request to a server (health checks); "
        "'dumbwaiter config --help': print a front server's config.",
    )
    parser.add_argument(
        "app",
        metavar="MODULE[:CALLABLE]",
        help="the WSGI application (CALLABLE defaults to 'application', then 'app')",
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


def config_from_args(argv: Sequence[str] | None) -> tuple[str, Config]:
    """Parse ``argv`` (plus ``DUMBWAITER_*``) into the app spec and a Config."""
    args = vars(build_parser().parse_args(argv))
    spec = args.pop("app")
    fields = {f.name: f for f in settings()}
    values: dict[str, Any] = {}
    for name, raw in args.items():
        f = fields[name]
        if isinstance(raw, str):
            values[name] = parse_value(f, raw)
        else:
            values[name] = raw
    return spec, Config.from_env(os.environ, **values).validate()


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
    try:
        spec, config = config_from_args(args)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        setup_logging(config.log_level, config.error_log)
        argv = [sys.executable, "-m", "dumbwaiter", *args]  # for an upgrade in place
        code = run(config, functools.partial(import_app, spec), argv)
    except AppLoadFailed as exc:
        fail(str(exc), EXIT_FAILURE)
    except (ListenError, ActivationError, ProcessError) as exc:
        fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        code = 0
    sys.exit(code)
