"""The code stays in pieces a newcomer can read: no module over 500 lines, no function over 60.

Length is sometimes the clearer choice (a table, a settings file, one linear procedure whose
steps only make sense together). Then a `# long: <why>` comment says so: on the line before the
function's `def` (or its first decorator), or for a module among its first lines. Without one,
this test fails, so the code cannot grow back into the shapes issue 14 took apart.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("console", "approvals", "agents")
# Not application code: schema history, and the benchmark program (docs/benchmarks.md).
EXCLUDED = ("/migrations/", "console/bench/")
MODULE_LINES = 500
FUNCTION_LINES = 60
MARKER = "# long:"
MODULE_MARKER_WITHIN = 40


def _sources() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not any(part in path.relative_to(ROOT).as_posix() for part in EXCLUDED)
    ]


def _name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def _has_marker(line: str) -> bool:
    return line.strip().startswith(MARKER) and len(line.strip()) > len(MARKER) + 3


def modules_too_long(path: Path, lines: list[str]) -> list[str]:
    if len(lines) <= MODULE_LINES or any(map(_has_marker, lines[:MODULE_MARKER_WITHIN])):
        return []
    return [f"{_name(path)}: {len(lines)} lines"]


def functions_too_long(path: Path, source: str, lines: list[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
        length = (node.end_lineno or node.lineno) - first + 1
        if length > FUNCTION_LINES and not (first > 1 and _has_marker(lines[first - 2])):
            found.append(f"{_name(path)}:{first} {node.name}: {length} lines")
    return found


def shape_problems(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    return modules_too_long(path, lines) + functions_too_long(path, source, lines)


def test_it_keeps_modules_and_functions_short_or_says_why() -> None:
    problems = [problem for path in _sources() for problem in shape_problems(path)]
    assert not problems, (
        f"Split these, or put a `{MARKER} <why>` comment before the def (module: near its top):\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def short():\n    return 1\n", 0),
        ("def long():\n" + "    x = 1\n" * 61, 1),
        ("# long: one linear procedure\ndef long():\n" + "    x = 1\n" * 61, 0),
        ("# long:\ndef long():\n" + "    x = 1\n" * 61, 1),  # a marker must say why
        ("x = 1\n" * 501, 1),
        ("# long: a table\n" + "x = 1\n" * 501, 0),
    ],
)
def test_it_finds_what_is_too_long(tmp_path: Path, body: str, expected: int) -> None:
    path = tmp_path / "module.py"
    path.write_text(body)
    problems = modules_too_long(path, body.splitlines()) + functions_too_long(
        path, body, body.splitlines()
    )
    assert len(problems) == expected, problems
