"""A virtualenv the way an agent author has one: no Django, no console, the SDK installed from
its built wheel beside the OpenAI Agents SDK and LangGraph.

Built once per test session, offline: the frameworks come with their hashes from
tests/agents/sdk/requirements-author.lock out of the wheels `make install` downloaded into
.venv/author-wheels/, the SDK from a wheel built here from agents/sdk (as `python -m build` makes
it: an sdist first, then the wheel from the sdist, so a file the sdist forgot is missed here).
"""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SDK_DIR = REPO / "agents" / "sdk"
# Scripts an agent author copies; the tests run them in an author venv against a live console.
EXAMPLES = SDK_DIR / "examples"
AUTHOR_LOCK = Path(__file__).with_name("requirements-author.lock")
# `make install` downloads the locked wheels here (see the Makefile).
AUTHOR_WHEELS = REPO / ".venv" / "author-wheels"
# For the tests that use the author_venv fixture: the first one pays for building it
# (pytest-timeout counts fixture setup), which a loaded machine stretches.
AUTHOR_VENV_TIMEOUT = pytest.mark.timeout(300)


@dataclass(frozen=True)
class AuthorVenv:
    python: Path
    wheel: Path
    sdist: Path

    @property
    def bin(self) -> Path:
        return self.python.parent

    def run(
        self,
        *args: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        **kwargs: object,
    ) -> subprocess.CompletedProcess:
        """Run the venv's python with a clean environment (plus `env`), outside the repository,
        with the venv's scripts (approval-console-mcp) first on the PATH, as an activated venv."""
        return subprocess.run(  # type: ignore[call-overload]
            [str(self.python), *args],
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            **{"cwd": self.python.parents[2], **kwargs},
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start the venv's python as `run` does, without waiting: read its stdout as it goes."""
        return subprocess.Popen(
            [str(self.python), *args],
            env=self.environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.python.parents[2],
        )

    def environment(self, env: dict[str, str] | None) -> dict[str, str]:
        return {
            **{
                k: v
                for k, v in os.environ.items()
                if k not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV"}
            },
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            **(env or {}),
        }


def _check(command: list[str], **kwargs: object) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")


def build_sdk(out: Path) -> tuple[Path, Path]:
    """The SDK's sdist and wheel, built from a copy of agents/sdk (no build output in the tree).
    No build isolation: setuptools and build are in the console's own hashed lock, so this needs
    no network."""
    source = out / "source"
    shutil.copytree(
        SDK_DIR,
        source,
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"),
    )
    _check(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--outdir",
            str(out / "dist"),
            str(source),
        ]
    )
    (sdist,) = (out / "dist").glob("*.tar.gz")
    (wheel,) = (out / "dist").glob("*.whl")
    return sdist, wheel


def make_author_venv(base: Path) -> AuthorVenv:
    if not (AUTHOR_WHEELS / ".downloaded").exists():
        message = f"The author venv's wheels are missing from {AUTHOR_WHEELS}: make install"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    sdist, wheel = build_sdk(base)
    venv = base / "venv"
    # Without pip of its own: this venv's pip installs into it (--python), which saves ensurepip;
    # --no-compile saves byte-compiling ~60 packages nobody imports whole. Seconds, not a minute.
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    install = [
        *(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"),
        *("--disable-pip-version-check", "--no-index", "--no-compile"),
    ]
    # Not the caller's PYTHONPATH: pip asks the new venv what is installed, and an SDK importable
    # from the tree (PYTHONPATH=agents/sdk/src, with build metadata there) would read as
    # installed already and be skipped.
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    _check(
        [*install, "--require-hashes", "--find-links", str(AUTHOR_WHEELS), "-r", str(AUTHOR_LOCK)],
        env=clean,
    )
    # --no-deps: httpx, its only dependency, came with its hash from the lock.
    _check([*install, "--no-deps", str(wheel)], env=clean)
    return AuthorVenv(python=python, wheel=wheel, sdist=sdist)
