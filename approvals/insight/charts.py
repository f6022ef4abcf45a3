"""Server-rendered SVG charts for the dashboard.

No JavaScript charting library: the strict CSP forbids inline script, and three chart shapes do
not need one. Colours come from classes in console.css (no inline styles either). Every label is
escaped: agent and tool names are agent-supplied text.
"""

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


def _y_axis(y_max: float, plot_height: float, width: int, fmt: Callable[[float], str]) -> list[str]:
    parts = []
    for step in range(5):
        value = y_max * step / 4
        y = _MARGIN_TOP + plot_height - plot_height * step / 4
        parts.append(
            f'<line class="grid" x1="{_MARGIN_LEFT}" x2="{width - _MARGIN_RIGHT}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_MARGIN_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(fmt(value))}</text>'
        )
    return parts


def line_chart(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    y_max: float | None = None,
    y_format: Callable[[float], str] = lambda value: f"{value:.0f}",
    width: int = 640,
    height: int = 260,
) -> SafeString:
    """Lines over shared x labels; None leaves a gap (no data that period)."""
    values = [value for _, points in series for value in points if value is not None]
    if not x_labels or not values:
        return _svg(width, 60, title, ['<text class="empty" x="8" y="30">No data yet.</text>'])
    top = y_max if y_max is not None else max(values) * 1.1 or 1.0
    plot_width = width - _MARGIN_LEFT - _MARGIN_RIGHT
    plot_height = height - _MARGIN_TOP - _MARGIN_BOTTOM
    step = plot_width / max(1, len(x_labels) - 1)

    def point(index: int, value: float) -> tuple[float, float]:
        x = _MARGIN_LEFT + (step * index if len(x_labels) > 1 else plot_width / 2)
        return x, _MARGIN_TOP + plot_height - plot_height * min(value, top) / top

    body = _y_axis(top, plot_height, width, y_format)
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
    legend_y = height - 8
    legend_x = _MARGIN_LEFT
    for number, (name, _) in enumerate(series):
        css = f"series-{number % SERIES_CLASSES}"
        body.append(
            f'<rect class="{css}" x="{legend_x}" y="{legend_y - 8}" width="10" height="10"/>'
            f'<text class="legend" x="{legend_x + 14}" y="{legend_y + 1}">{escape(name)}</text>'
        )
        legend_x += 14 + 7 * min(len(name), 28) + 16
    return _svg(width, height, title, body)


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
    row_height, label_width = 26, 220
    height = row_height * len(bars) + 12
    top = max(value for _, value in bars) or 1.0
    plot_width = width - label_width - 80
    body = []
    for index, (label, value) in enumerate(bars):
        y = 6 + index * row_height
        css = "bar flagged" if flagged and flagged[index] else "bar"
        bar_width = plot_width * value / top
        shown = label if len(label) <= 34 else label[:33] + "…"
        body.append(
            f'<text class="axis" x="{label_width - 8}" y="{y + 16}" text-anchor="end">'
            f"{escape(shown)}<title>{escape(label)}</title></text>"
            f'<rect class="{css}" x="{label_width}" y="{y + 3}" width="{bar_width:.1f}" '
            f'height="{row_height - 8}"/>'
            f'<text class="value" x="{label_width + bar_width + 6:.1f}" y="{y + 16}">'
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

    body = _y_axis(1.0, plot_height, width, lambda value: f"{value:.0%}")
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
