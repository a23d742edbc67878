"""docs/deploy/*.md show `dumbwaiter config`'s output as it is: each block
after a ```sh block holding a `dumbwaiter config` command is that command's
output (the interpreter's path written as /usr/bin/python3)."""

from __future__ import annotations

import pathlib
import re
import shlex

from serving import run_cli

DEPLOY = pathlib.Path(__file__).parents[2] / "docs" / "deploy"
EXAMPLE = re.compile(
    r"```sh\n(dumbwaiter config [^\n]+)\n```\n\n```[a-z]*\n(# dumbwaiter config .*?)```", re.S
)
#: The interpreter a spawning front is told to run (sys.executable).
INTERPRETER = re.compile(r"[^\s\"']*/python[0-9.]*(?= -m dumbwaiter)")


def examples() -> list[tuple[str, str, str]]:
    return [
        (page.name, match.group(1), match.group(2))
        for page in sorted(DEPLOY.glob("*.md"))
        for match in EXAMPLE.finditer(page.read_text())
    ]


def test_every_front_has_examples() -> None:
    pages = {page for page, _, _ in examples()}
    assert pages == {
        f"{front}.md" for front in ("apache", "caddy", "h2o", "haproxy", "lighttpd", "nginx")
    }


def test_each_example_is_what_the_command_prints() -> None:
    stale = []
    for page, command, shown in examples():
        done = run_cli(shlex.split(command)[1:])
        assert done.returncode == 0, (page, command, done.stderr)
        if INTERPRETER.sub("/usr/bin/python3", done.stdout) != shown:
            stale.append(f"{page}: {command}")
    assert stale == [], "out of date (rerun each command into its block)"
