"""The insight charts' axes and labels (approvals/insight/charts.py)."""

import re

from approvals.insight import charts
from approvals.insight.dashboard import _duration


def test_it_puts_duration_ticks_on_round_values() -> None:
    ticks = charts.axis_ticks(85.5, steps=charts.DURATION_STEPS)
    assert ticks == [0, 30, 60, 90]
    assert [_duration(tick) for tick in charts.axis_ticks(2000, steps=charts.DURATION_STEPS)] == [
        "0s",
        "10m",
        "20m",
        "30m",
        "40m",
    ]
    assert charts.axis_ticks(0.7) == [0, 0.2, 0.4, 0.6, 0.8]


def test_the_time_chart_axis_reads_in_round_steps() -> None:
    svg = charts.line_chart(
        title="Time to decision",
        x_labels=["12-01", "12-02"],
        series=[("median", [31.0, 85.5])],
        y_format=_duration,
        y_steps=charts.DURATION_STEPS,
    )
    axis = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert axis == ["0s", "30s", "1m", "90s"]


def test_it_breaks_long_labels_between_words_never_inside_one() -> None:
    label = "Rule “Refunds above 500 EUR need a person from the demo-team on call tonight”"
    lines = charts.label_lines(label)
    assert len(lines) == 2 and lines[1].endswith("…")
    words = set(label.split())
    for line in lines:
        assert all(word in words for word in line.removesuffix("…").split()), line
    svg = charts.bar_chart(title="Held, per rule", bars=[(label, 7), ("Rule “short”", 2)])
    assert "<tspan" in svg and f"<title>{label}</title>" in svg  # the whole label on hover
    assert "Rule “short”</tspan>" in svg
