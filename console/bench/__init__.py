"""`make bench`: the console started the production way on loopback, measured from outside.

`python -m console.bench` (the runner) prepares a database, starts two uvicorn processes and a
Celery worker, then runs `console.bench.load` in its own process so the load generator never
shares an interpreter with the server it measures. `console.bench.memory` adds one fresh server
process per memory figure.
"""

from collections.abc import Collection, Sequence


def aligned(rows: Sequence[tuple[str, ...]], *, text_columns: Collection[int] = (0,)) -> list[str]:
    """Rows as a plain-text table: the first row is the header, the first column the name.

    Figures align right; the `text_columns` (by index: the name, and any other words) left.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        " | ".join(cell.ljust(widths[i]) if i in text_columns else cell.rjust(widths[i])
                   for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]  # fmt: skip
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return lines
