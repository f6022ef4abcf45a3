"""A fresh machine installs exactly the files CI tested: every lock pins a version and its hashes,
and the Makefile installs with `--require-hashes`, so pip refuses a file whose hash differs
(a re-uploaded or substituted release) instead of installing it.
"""

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LOCKS = [ROOT / "requirements.lock", ROOT / "tests/agents/sdk/requirements-author.lock"]


def _requirements(lock: Path) -> list[str]:
    """The lock's requirement entries, each with its continuation lines joined."""
    text = lock.read_text().replace("\\\n", " ")
    return [
        line.split("#", 1)[0].strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_it_pins_every_release_with_its_hashes(lock: Path) -> None:
    entries = _requirements(lock)
    assert entries, f"{lock.name} lists nothing"
    for entry in entries:
        spec, *options = entry.split(" --")
        requirement = Requirement(spec.strip())
        pins = [s for s in requirement.specifier if s.operator == "=="]
        assert len(pins) == 1, f"{requirement.name} is not pinned to one version in {lock.name}"
        hashes = [option for option in options if option.startswith("hash=sha256:")]
        assert hashes, f"{requirement.name} has no sha256 hash in {lock.name}"
        assert all(re.fullmatch(r"hash=sha256:[0-9a-f]{64}", h.strip()) for h in hashes)


def test_it_installs_the_locks_only_with_their_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    # A lock is installed, or downloaded for the tests to install offline (the author venv).
    installs = [
        line
        for line in makefile.splitlines()
        if ("pip install" in line or "pip download" in line) and "-r " in line
    ]
    assert {lock.name for lock in LOCKS} <= {
        Path(word).name for line in installs for word in line.split()
    }
    for line in installs:
        assert "--require-hashes" in line, line
