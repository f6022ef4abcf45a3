"""Server-rendered SVG charts for the dashboard.

No JavaScript charting library: the strict CSP forbids inline script, and three chart shapes do
not need one. Colours come from classes in console.css (no inline styles either). Every label is
escaped: agent and tool names are agent-supplied text.
"""

import math
import textwrap
from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SERIES_CLASSES = 6
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP, _MARGIN_BOTTOM = 56, 16, 16, 40


def _svg(width: int, height: int, title: str, body: list[str]) -> SafeString:
    return mark_safe(  # noqa: S308  (every interpolated text went through escape())
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


# Round steps for an axis of counts: never less than 1 (0, 0.5, 1 would read 0, 0, 1).
COUNT_STEPS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)

# Round steps for an axis of durations, in seconds: 15 s, 30 s, 1 min, 2 min, 5 min, ... 1 day.
DURATION_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)


def _round_step(rough: float, steps: Sequence[float] | None) -> float:
    """The smallest round step at least `rough`: from `steps`, or 1, 2 or 5 times a power of ten."""
    if steps:
        return next(
            (step for step in steps if step >= rough), steps[-1] * math.ceil(rough / steps[-1])
        )
    power = 10 ** math.floor(math.log10(rough))
    return next(factor * power for factor in (1, 2, 5, 10) if factor * power >= rough)


def axis_ticks(
    largest: float, *, steps: Sequence[float] | None = None, count: int = 4
) -> list[float]:
    """Round tick values from 0 to at least `largest`, about `count` intervals: an axis of
    durations reads 0, 30 s, 1 min, 1 min 30 s, never 0, 47 s, 94 s."""
    if largest <= 0:
        return [0.0, 1.0]
    step = _round_step(largest / count, steps)
    return [round(step * index, 9) for index in range(math.ceil(largest / step - 1e-9) + 1)]


def _y_axis(
    ticks: Sequence[float], plot_height: float, width: int, fmt: Callable[[float], str]
) -> list[str]:
    parts = []
    top = ticks[-1]
    for value in ticks:
        y = _MARGIN_TOP + plot_height - plot_height * value / top
        parts.append(
            f'<line class="grid" x1="{_MARGIN_LEFT}" x2="{width - _MARGIN_RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_MARGIN_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(fmt(value))}</text>'
        )
    return parts


def label_lines(label: str, *, width: int = 30, lines: int = 2) -> list[str]:
    """A long label on up to `lines` lines, broken between words; what does not fit ends in
    "…" after a whole word (a word longer than a line is the only thing ever cut)."""
    wrapped = textwrap.wrap(label, width, break_on_hyphens=False) or [""]
    if len(wrapped) <= lines:
        return wrapped
    rest = " ".join(wrapped[lines - 1 :])
    return [
        *wrapped[: lines - 1],
        textwrap.shorten(rest, width, placeholder=" …", break_on_hyphens=False),
    ]


def line_chart(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    y_max: float | None = None,
    y_format: Callable[[float], str] = lambda value: f"{value:.0f}",
    y_steps: Sequence[float] | None = None,
    width: int = 640,
    height: int = 260,
) -> SafeString:
    """Lines over shared x labels; None leaves a gap (no data that period).

    y_max: the axis' fixed top (1.0 for rates); otherwise round ticks above the largest value,
    from `y_steps` when given (DURATION_STEPS for seconds)."""
    values = [value for _, points in series for value in points if value is not None]
    if not x_labels or not values:
        return _svg(width, 60, title, ['<text class="empty" x="8" y="30">No data yet.</text>'])
    ticks = (
        [y_max * index / 4 for index in range(5)]
        if y_max is not None
        else axis_ticks(max(values), steps=y_steps)
    )
    top = ticks[-1]
    plot_width = width - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_height = height - _MARGIN_TOP - _MARGIN_BOTTOM
    step = plot_width / max(1, len(x_labels) - 1)

    def point(index: int, value: float) -> tuple[float, float]:
        x = _MARGIN_LEFT + (step * index if len(x_labels) > 1 else plot_width / 2)
        return x, _MARGIN_TOP + plot_height - plot_height * min(value, top) / top

    body = _y_axis(ticks, plot_height, width, y_format)
    label_every = max(1, len(x_labels) // 8)
    for index, label in enumerate(x_labels):
        if index % label_every == 0:
            x, _ = point(index, 0)
            body.append(
                f'<text class="axis" x="{x:.1f}" y="{height - _MARGIN_BOTTOM + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for number, (name, points) in enumerate(series):
        css = f"series-{number % SERIES_CLASSES}"
        runs: list[list[tuple[float, float]]] = [[]]
        for index, value in enumerate(points):
            if value is None:
                runs.append([])
                continue
            runs[-1].append(point(index, value))
            x, y = runs[-1][-1]
            body.append(
                f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(name)} {escape(x_labels[index])}: "
                f"{escape(y_format(value))}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                body.append(f'<polyline class="line {css}" points="{coordinates}"/>')
    return _svg(width, height, title, [*body, *_legend([name for name, _ in series], height)])


def _legend(names: Sequence[str], height: int) -> list[str]:
    """One swatch and name per series, in a row along the bottom edge."""
    legend_y = height - 8
    legend_x = _MARGIN_LEFT
    parts = []
    for number, name in enumerate(names):
        css = f"series-{number % SERIES_CLASSES}"
        parts.append(
            f'<rect class="{css}" x="{legend_x}" y="{legend_y - 8}" width="10" height="10"/>'
            f'<text class="legend" x="{legend_x + 14}" y="{legend_y + 1}">{escape(name)}</text>'
        )
        legend_x += 14 + 7 * min(len(name), 28) + 16
    return parts


def bar_chart(
    *,
    title: str,
    bars: Sequence[tuple[str, float]],
    value_format: Callable[[float], str] = lambda value: f"{value:.0f}",
    width: int = 640,
    flagged: Sequence[bool] | None = None,
) -> SafeString:
    """Horizontal bars, one per label, largest scale = the largest value."""
    if not bars:
        return _svg(width, 60, title, ['<text class="empty" x="8" y="30">No data yet.</text>'])
    labels = [label_lines(label) for label, _ in bars]
    # Two-line labels need taller rows; every row the same height keeps the bars comparable.
    row_height = 40 if any(len(lines) > 1 for lines in labels) else 26
    label_width = 220
    height = row_height * len(bars) + 12
    top = max(value for _, value in bars) or 1.0
    plot_width = width - label_width - 80
    body = []
    for index, (label, value) in enumerate(bars):
        y = 6 + index * row_height
        middle = y + row_height / 2
        css = "bar flagged" if flagged and flagged[index] else "bar"
        bar_width = plot_width * value / top
        lines = labels[index]
        first_y = middle + 4 - 7 * (len(lines) - 1)
        tspans = "".join(
            f'<tspan x="{label_width - 8}" y="{first_y + 14 * number:.1f}">{escape(line)}</tspan>'
            for number, line in enumerate(lines)
        )
        body.append(
            f'<text class="axis" text-anchor="end">{tspans}<title>{escape(label)}</title></text>'
            f'<rect class="{css}" x="{label_width}" y="{middle - 9:.1f}" width="{bar_width:.1f}" '
            f'height="18"/>'
            f'<text class="value" x="{label_width + bar_width + 6:.1f}" y="{middle + 4:.1f}">'
            f"{escape(value_format(value))}</text>"
        )
    return _svg(width, height, title, body)


def calibration_chart(
    *,
    title: str,
    bins: Sequence[tuple[float, float, float | None, int]],
    width: int = 320,
    height: int = 300,
) -> SafeString:
    """A reliability diagram: approval rate per confidence bin against the diagonal.

    `bins`: (lower, upper, approval rate or None, count). Points are sized by count.
    """
    plot_width = width - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_height = height - _MARGIN_TOP - _MARGIN_BOTTOM

    def to_x(value: float) -> float:
        return _MARGIN_LEFT + plot_width * value

    def to_y(value: float) -> float:
        return _MARGIN_TOP + plot_height - plot_height * value

    body = _y_axis([0, 0.25, 0.5, 0.75, 1.0], plot_height, width, lambda value: f"{value:.0%}")
    body.append(
        f'<line class="diagonal" x1="{to_x(0):.1f}" y1="{to_y(0):.1f}" '
        f'x2="{to_x(1):.1f}" y2="{to_y(1):.1f}"/>'
    )
    for tick in (0, 0.5, 1):
        body.append(
            f'<text class="axis" x="{to_x(tick):.1f}" y="{height - _MARGIN_BOTTOM + 16}" '
            f'text-anchor="middle">{tick:.1f}</text>'
        )
    body.append(
        f'<text class="axis" x="{to_x(0.5):.1f}" y="{height - 6}" text-anchor="middle">'
        "stated confidence</text>"
    )
    most = max((count for *_, count in bins), default=0) or 1
    points = []
    for lower, upper, rate, count in bins:
        if rate is None:
            continue
        x, y = to_x((lower + upper) / 2), to_y(rate)
        points.append((x, y))
        radius = 3 + 5 * (count / most) ** 0.5
        body.append(
            f'<circle class="series-0" cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}">'
            f"<title>{lower:.1f}-{upper:.1f}: approved {rate:.0%} of {count}</title></circle>"
        )
    if len(points) > 1:
        coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline class="line series-0" points="{coordinates}"/>')
    return _svg(width, height, title, body)
