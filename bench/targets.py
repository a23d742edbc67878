"""The targets (bench/targets.toml) and what they need: venvs, the C responder.

Peers live in their own virtualenvs under ``bench/.cache/venvs/NAME``, made
from PyPI with the pinned requirements of ``[venvs]``; a venv whose recorded
requirements differ is made again.  The C responder is compiled from
``bench/cfcgi.c`` into ``bench/.cache/cfcgi`` when the source is newer.
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

    def command(self, sock: str, app_dir: Path) -> list[str]:
        """The backend's argv for this point."""
        venv = CACHE / "venvs" / self.venv if self.venv else ""
        values = {
            "sock": sock,
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


COMPILED_VENV = "dumbwaiter-compiled"


def ensure_compiled() -> Path:
    """The venv of the compiled targets: the working tree built with
    ``DUMBWAITER_COMPILE=1`` (setup.py, mypyc), rebuilt when the sources change."""
    venv = CACHE / "venvs" / COMPILED_VENV
    stamp = venv / "bench-source.txt"
    fingerprint = source_fingerprint()
    if stamp.exists() and stamp.read_text() == fingerprint:
        return venv
    print("building dumbwaiter with its compiled fast path", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "setuptools>=77", "wheel", "mypy>=1.10"], check=True, timeout=1800)
    subprocess.run(
        [*pip, "--no-build-isolation", f"{REPO}[speed]"],
        env={**os.environ, "DUMBWAITER_COMPILE": "1"},
        check=True,
        timeout=1800,
    )
    stamp.write_text(fingerprint)
    return venv


def prepare(venvs: dict[str, list[str]], targets: list[Target]) -> None:
    """Everything the chosen targets need, made before the first point."""
    for name in sorted({t.venv for t in targets if t.venv}):
        if name == COMPILED_VENV:
            ensure_compiled()
        else:
            ensure_venv(name, venvs[name])
    if any("{cfcgi}" in t.argv for t in targets):
        ensure_cfcgi()


def source_fingerprint() -> str:
    """A short hash of dumbwaiter's source as it is now (the files each point imports).

    The harness runs the working tree; recorded per point, it shows when the
    code changed under a run.
    """
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "dumbwaiter").rglob("*.py")):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
