"""The targets (bench/targets.toml) and what they need: venvs, the C responder.

Peers live in their own virtualenvs under ``bench/.cache/venvs/NAME``, made
from PyPI with the pinned requirements of ``[venvs]``; a venv whose recorded
requirements differ is made again.  The C responder is compiled from
``bench/cfcgi.c`` into ``bench/.cache/cfcgi`` when the source is newer.

With ``run.py --base REF`` every chosen target that runs dumbwaiter gets a twin,
``base-NAME``: the same argv run by dumbwaiter as it was at REF, from a venv of
its own (``dumbwaiter-base-SHA`` for the pure-Python targets,
``dumbwaiter-base-compiled-SHA`` for the compiled ones; SHA is REF's commit,
shortened), built from ``git archive REF`` and cached under that commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import tomllib

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
DEFAULT_WORKLOADS = ("hello", "big", "upload", "c1000")
SWEEP_WORKLOADS = ("sweep1", "sweep10", "sweep100")


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    front: str
    argv: tuple[str, ...]  # with {placeholders}; empty: no backend (static)
    venv: str | None
    workloads: tuple[str, ...]
    stop: signal.Signals
    role: str

    def command(self, sock: str, app_dir: Path, port: int | None = None) -> list[str]:
        """The backend's argv for this point (``port``: its loopback TCP port,
        for a target without a front)."""
        venv = CACHE / "venvs" / self.venv if self.venv else ""
        values = {
            "sock": sock,
            "port": str(port),
            "venv": str(venv),
            "python": str(REPO / ".venv" / "bin" / "python"),
            "cfcgi": str(CACHE / "cfcgi"),
            "app_dir": str(app_dir),
        }
        return [part.format(**values) for part in self.argv]


def load(path: Path = BENCH / "targets.toml") -> tuple[dict[str, list[str]], list[Target]]:
    """Read the venvs' requirements and the targets, in file order."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    targets = []
    for entry in data["target"]:
        if entry["name"].startswith(BASE_PREFIX):
            raise SystemExit(f"{path}: {entry['name']}: base-* names are the --base twins'")
        workloads = entry.get("workloads")
        if workloads is None:
            workloads = DEFAULT_WORKLOADS + (SWEEP_WORKLOADS if entry.get("sweep") else ())
        targets.append(
            Target(
                name=entry["name"],
                front=entry["front"],
                argv=tuple(entry["argv"]),
                venv=entry.get("venv"),
                workloads=tuple(workloads),
                stop=signal.Signals["SIG" + entry.get("stop", "TERM")],
                role=entry.get("role", ""),
            )
        )
    return data["venvs"], targets


def ensure_venv(name: str, requirements: list[str]) -> Path:
    """Make (or reuse) the venv ``name`` with exactly ``requirements`` installed."""
    venv = CACHE / "venvs" / name
    stamp = venv / "bench-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    print(f"making venv {name}: {' '.join(requirements)}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    if requirements:  # (none: the interpreter alone)
        subprocess.run([*pip, *requirements], check=True, timeout=1800)
    stamp.write_text(wanted)
    return venv


def ensure_cfcgi() -> Path:
    """Compile the C responder if it is missing or older than its source."""
    source, binary = BENCH / "cfcgi.c", CACHE / "cfcgi"
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    print("compiling bench/cfcgi.c", flush=True)
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-o", str(binary), str(source), "-lfcgi", "-lpthread"],
        check=True,
        timeout=120,
    )
    return binary


COMPILED_VENV = "dumbwaiter"
#: The venv whose mypyc compiles bench/floor_serve.py (the floor-compiled-* targets).
FLOOR_COMPILED_VENV = "floorc"


def compile_floor(app_dir: Path) -> None:
    """Compile bench/floor_serve.py with mypyc into ``app_dir`` as the module
    ``floor_compiled`` (the floor-compiled-* targets import it)."""
    build = app_dir / "floor-build"
    build.mkdir()
    shutil.copy(BENCH / "floor_serve.py", build / "floor_compiled.py")
    mypyc = CACHE / "venvs" / FLOOR_COMPILED_VENV / "bin" / "mypyc"
    print("compiling the pure-Python floor with mypyc", flush=True)
    subprocess.run(
        [str(mypyc), "floor_compiled.py"],
        cwd=build,
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    for built in build.glob("floor_compiled.*.so"):
        shutil.copy(built, app_dir / built.name)
    if not list(app_dir.glob("floor_compiled.*.so")):
        raise SystemExit("mypyc built no floor_compiled module")


def ensure_compiled() -> Path:
    """The venv of the headline targets: the working tree installed as the README's
    first command installs it (``pip install '.[speed]'``, which compiles the request
    path where a compiler is present), made again when the sources change.  A build
    that fell back to pure Python stops the run: the headline would be mislabelled."""
    venv = CACHE / "venvs" / COMPILED_VENV
    stamp = venv / "bench-source.txt"
    fingerprint = source_fingerprint()
    if stamp.exists() and stamp.read_text() == fingerprint:
        return venv
    print("installing dumbwaiter as the README does (compiled build)", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUMBWAITER_")}
    subprocess.run(
        [python, "-m", "pip", "install", "-q", f"{REPO}[speed]"],
        env=env,
        cwd=CACHE,
        check=True,
        timeout=1800,
    )
    version = subprocess.run(
        [python, "-m", "dumbwaiter", "--version"],
        cwd=CACHE,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    if "(compiled)" not in version:
        raise SystemExit(f"{venv}: the README's install gave {version!r}, not the compiled build")
    stamp.write_text(fingerprint)
    return venv


def prepare(venvs: dict[str, list[str]], targets: list[Target], base: Base | None = None) -> None:
    """Everything the chosen targets need, made before the first point.

    The base twins' venvs come last: the compiled one copies the versions of
    the compiled venv of the working tree, which must be built first."""
    names = sorted({t.venv for t in targets if t.venv})
    bases = {base.pure_venv: False, base.compiled_venv: True} if base else {}
    for name in names:
        if name == COMPILED_VENV:
            ensure_compiled()
        elif name not in bases:
            ensure_venv(name, venvs[name])
    for name in names:
        if base and name in bases:
            ensure_base(base, compiled=bases[name])
    if any("{cfcgi}" in t.argv for t in targets):
        ensure_cfcgi()


# --- the base twins (run.py --base REF) --------------------------------------------

BASE_PREFIX = "base-"
#: What the twins share with their targets' venvs, pinned to the versions there:
#: the event loop and the HTTP parser (and the compiler, where the venv has it).
SPEED_PACKAGES = ("uvloop", "httptools")
COMPILER_PACKAGES = ("mypy",)


@dataclasses.dataclass(frozen=True)
class Base:
    """dumbwaiter as it was at an older commit: what the ``base-*`` twins run."""

    ref: str  # as given on the command line
    sha: str  # the commit it names, in full

    @property
    def short(self) -> str:
        return self.sha[:12]

    @property
    def pure_venv(self) -> str:
        return f"dumbwaiter-base-{self.short}"

    @property
    def compiled_venv(self) -> str:
        return f"dumbwaiter-base-compiled-{self.short}"

    def describe(self) -> dict[str, str]:
        """For the JSON record and the report."""
        log = ["git", "-C", str(REPO), "log", "-1", "--format=%cI%n%s", self.sha]
        date, _, subject = _git_out(log).partition("\n")
        describe = _git_out(["git", "-C", str(REPO), "describe", "--always", self.sha])
        return {
            "ref": self.ref,
            "sha": self.sha,
            "describe": describe,
            "date": date,
            "subject": subject,
        }


def _git_out(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() if done.returncode == 0 else "?"


def resolve_base(ref: str) -> Base:
    """``ref`` (any commit-ish of this repository) as a Base; exits if it names none."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ref.startswith("-") or done.returncode != 0:
        raise SystemExit(f"--base {ref}: not a commit of this repository")
    return Base(ref, done.stdout.strip())


def dumbwaiter_kind(target: Target) -> str | None:
    """ "pure" for a target run by this repo's .venv, "compiled" for one run by the
    compiled venv, None for the others (peers, C, static)."""
    if target.venv == COMPILED_VENV:
        return "compiled"
    if target.venv is None and any("{python}" in part for part in target.argv):
        return "pure"
    return None


def base_twin(target: Target, base: Base) -> Target | None:
    """``target`` run by dumbwaiter at ``base``: same argv, front and workloads."""
    kind = dumbwaiter_kind(target)
    if kind == "pure":
        argv = tuple(part.replace("{python}", "{venv}/bin/python") for part in target.argv)
        venv = base.pure_venv
    elif kind == "compiled":
        argv, venv = target.argv, base.compiled_venv
    else:
        return None
    return dataclasses.replace(
        target,
        name=BASE_PREFIX + target.name,
        argv=argv,
        venv=venv,
        role=f"{target.name} at {base.ref} ({base.short})",
    )


def with_base_twins(targets: list[Target], base: Base) -> list[Target]:
    """``targets`` with each dumbwaiter target's twin right after it, so that every
    round measures them back to back: A base-A B base-B ..."""
    result = []
    for target in targets:
        result.append(target)
        twin = base_twin(target, base)
        if twin is not None:
            result.append(twin)
    return result


def installed_versions(python: Path | str, packages: tuple[str, ...]) -> dict[str, str]:
    """The versions of ``packages`` in the venv of ``python`` (missing ones left out)."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try: print(name, m.version(name))\n"
        "    except m.PackageNotFoundError: pass\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, *packages], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(line.split() for line in done.stdout.splitlines())


def export_source(sha: str, dest: Path) -> None:
    """The tree of commit ``sha`` into ``dest`` (git archive: the work tree is untouched)."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", sha],
        capture_output=True,
        check=True,
        timeout=300,
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=300)


def ensure_base(base: Base, compiled: bool) -> Path:
    """Make (or reuse) the venv of the pure or compiled base twins.

    Pure: REF's source installed with ``[speed]`` (``DUMBWAITER_PURE=1``) into a venv of the .venv's
    interpreter, uvloop and httptools pinned to the .venv's versions.  Compiled:
    ``DUMBWAITER_COMPILE=1`` with ``--no-build-isolation`` (what every commit since
    the compiled build understands), uvloop and httptools pinned to the versions of
    the compiled venv, mypy as there if it has one (the README's install builds in
    isolation, so it has none: then the newest).  Cached by REF's full commit and
    those pins.
    """
    name = base.compiled_venv if compiled else base.pure_venv
    venv = CACHE / "venvs" / name
    if compiled:
        twin_of = CACHE / "venvs" / COMPILED_VENV / "bin" / "python"
        interpreter = sys.executable
        packages = SPEED_PACKAGES + COMPILER_PACKAGES
    else:
        twin_of = REPO / ".venv" / "bin" / "python"
        interpreter = str(twin_of)
        packages = SPEED_PACKAGES
    pins = [f"{n}=={v}" for n, v in installed_versions(twin_of, packages).items()]
    stamp = venv / "bench-base.txt"
    wanted = "\n".join([base.sha, *pins]) + "\n"
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    kind = "compiled " if compiled else ""
    print(f"building {kind}dumbwaiter at {base.ref} ({base.short}) into {name}", flush=True)
    source = CACHE / "src" / name
    export_source(base.sha, source)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    env = {k: v for k, v in os.environ.items() if k != "DUMBWAITER_COMPILE"}
    speed = [p for p in pins if p.split("==")[0] in SPEED_PACKAGES]
    if compiled:
        compiler = [p for p in pins if p.split("==")[0] in COMPILER_PACKAGES] or ["mypy>=1.10"]
        # (wsproto: mypyc type-checks the ASGI modules against it, without isolation)
        subprocess.run(
            [*pip, "setuptools>=77", "wheel", "wsproto>=1.2", *compiler], check=True, timeout=1800
        )
        subprocess.run(
            [*pip, "--no-build-isolation", f"{source}[speed]", *speed],
            env={**env, "DUMBWAITER_COMPILE": "1"},
            cwd=CACHE,
            check=True,
            timeout=1800,
        )
    else:
        # (Since the fast build became the default, a plain install compiles
        # where it can: DUMBWAITER_PURE=1 asks for pure Python, and older
        # commits, which compiled only when asked, ignore it.)
        subprocess.run(
            [*pip, f"{source}[speed]", *speed],
            env={**env, "DUMBWAITER_PURE": "1"},
            cwd=CACHE,
            check=True,
            timeout=1800,
        )
    check_base_venv(venv, compiled)
    shutil.rmtree(source, ignore_errors=True)
    stamp.write_text(wanted)
    return venv


def check_base_venv(venv: Path, compiled: bool) -> None:
    """The venv's python, started where the points start, imports dumbwaiter from
    the venv (not the working tree), with compiled modules exactly if ``compiled``."""
    code = "import dumbwaiter; print(dumbwaiter.__file__)"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    package = Path(done.stdout.strip()).parent
    if not package.is_relative_to(venv):
        raise SystemExit(f"{venv.name}: dumbwaiter imported from {package}, not from the venv")
    extensions = list(package.rglob("*.so"))
    if bool(extensions) is not compiled:
        found = "compiled modules" if extensions else "no compiled module"
        raise SystemExit(f"{venv.name}: {found} in {package}")


def source_fingerprint() -> str:
    """A short hash of dumbwaiter's source as it is now (the files each point imports).

    The harness runs the working tree; recorded per point, it shows when the
    code changed under a run.
    """
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "dumbwaiter").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
