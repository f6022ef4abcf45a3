"""Every file path the documentation names exists, so the docs cannot drift from the tree.

Checked: paths in backquotes and link targets in README.md and docs/*.md that look like a file
in this repository (a known extension, or a folder ending in "/"). Not checked: URLs, URL paths
(starting with "/"), and placeholders (`<name>`, `{x}`, `*`, `...`).
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# README.md links docs/operations.md, which the README's rewrite (in flight) adds: until it
# lands README's check is expected to fail, and the day the file exists it runs as the others.
_README = pytest.param(
    ROOT / "README.md",
    marks=pytest.mark.xfail(
        not (ROOT / "docs" / "operations.md").exists(),
        reason="docs/operations.md comes with the README rewrite",
        strict=True,
    ),
    id="README.md",
)
DOCUMENTS = [_README, *sorted((ROOT / "docs").glob("*.md"))]
EXTENSIONS = (
    ".py", ".md", ".html", ".toml", ".js", ".css", ".txt", ".yml", ".yaml", ".json", ".sh",
    ".cfg", ".ini", ".lock", ".svg", ".sql",
)  # fmt: skip
BACKQUOTED = re.compile(r"`([^`\s]+)`")
LINKED = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
PLACEHOLDER = re.compile(r"[<>{}*$]|\.\.\.|…")
# Files that exist only on a deployed or developer's machine, not in the repository.
NOT_IN_REPOSITORY = {".env", "var/"}


def looks_like_repository_path(text: str) -> bool:
    text = text.split(":")[0] if re.fullmatch(r"[\w./-]+:\d+(-\d+)?", text) else text
    if "://" in text or text.startswith(("/", "~", "-")) or PLACEHOLDER.search(text):
        return False
    if text in NOT_IN_REPOSITORY or text.startswith("var/"):
        return False
    has_folder = "/" in text.rstrip("/")
    return (has_folder or text.endswith(".md")) and (
        text.endswith(EXTENSIONS) or (text.endswith("/") and has_folder)
    )


def named_paths(document: Path) -> list[tuple[str, Path]]:
    text = document.read_text()
    named = []
    for match in BACKQUOTED.finditer(text):
        candidate = match.group(1)
        if looks_like_repository_path(candidate):
            named.append((candidate, ROOT / candidate.split(":")[0]))
    for match in LINKED.finditer(text):
        candidate = match.group(1)
        if looks_like_repository_path(candidate):
            named.append((candidate, (document.parent / candidate).resolve()))
    return named


def _exists(candidate: str, resolved: Path) -> bool:
    # A bare file name in backquotes (`trail.py`) is read from the root; a document may name a
    # file by its path inside the docs folder or the repository.
    return resolved.exists() or (ROOT / candidate).exists() or (ROOT / "docs" / candidate).exists()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_it_names_only_paths_that_exist(document: Path) -> None:
    missing = sorted(
        {
            candidate
            for candidate, resolved in named_paths(document)
            if not _exists(candidate, resolved)
        }
    )
    assert not missing, f"{document.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_it_tells_a_path_from_a_url_or_a_placeholder() -> None:
    assert looks_like_repository_path("approvals/services/creation.py")
    assert looks_like_repository_path("docs/protocols.md")
    assert looks_like_repository_path("approvals/realtime/")
    assert not looks_like_repository_path("https://example.com/a.py")
    assert not looks_like_repository_path("/api/v1/approvals/")
    assert not looks_like_repository_path("docs/<topic>.md")
    assert not looks_like_repository_path("approvals/services/*.py")
