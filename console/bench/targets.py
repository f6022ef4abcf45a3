"""Issue 16's targets beside the figures of the same run: the last table of `make bench`.

Each target reads one figure the sections already measured (none is measured here), compares
it with its limit and says at what size it was measured: `default` measures some at smaller
sizes than the targets name (100 waiting agents, not 1,000), and then the row says so. Only
the sections that ran have rows (`--only`).
"""

from dataclasses import asdict, dataclass
from typing import Any

from console.bench import aligned

# Sizes the targets name (issue 16).
TARGET_WAITING = 1000
TARGET_SOCKETS = 1000
TARGET_IDLE_WEBSOCKETS = 10_000
TARGET_QUEUE_SIZE = (100_000, 1_000_000)
QUEUE_PAGE_PREFIX = "queue page"


@dataclass(frozen=True)
class Target:
    key: str  # the JSON's name for it
    measure: str
    figure: float
    unit: str  # "x" (a ratio), "ms", "MB", "queries"
    limit: float
    size: str  # what the figure was measured at
    target_size: str  # what the target names
    at_target_size: bool
    detail: str = ""  # the figures behind a ratio, or where a figure comes from

    @property
    def met(self) -> bool:
        return self.figure <= self.limit


def _number(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "queries":
        return f"{value:+.0f} queries"
    return f"{value:.1f} {unit}" if unit == "ms" else f"{value:.0f} {unit}"


def _gate(results: dict[str, Any]) -> list[Target]:
    found = []
    for concurrency, numbers in results.get("gate", {}).get("by_concurrency", {}).items():
        healthz, approved = numbers["healthz"], numbers["create_approved"]
        for percentile, limit in (("p50", 1.5), ("p99", 2.0)):
            found.append(
                Target(
                    key=f"gate_{percentile}_ratio_c{concurrency}",
                    measure=f"gate: policy-approved / healthz {percentile}, c={concurrency}",
                    figure=numbers[f"{percentile}_ratio"],
                    unit="x",
                    limit=limit,
                    size=f"one server process, {approved['count']:.0f} calls each",
                    target_size="one server process",
                    at_target_size=True,
                    detail=f"{approved[f'{percentile}_ms']:.1f} / "
                    f"{healthz[f'{percentile}_ms']:.1f} ms",
                )
            )
    return found


def _server_cpu(results: dict[str, Any]) -> list[Target]:
    throughput = results.get("throughput")
    if not throughput:
        return []
    size = f"c={throughput['concurrency']:.0f}, both servers"
    return [
        Target(
            key=f"server_cpu_{key.removeprefix('create_')}_ms",
            measure=f"server CPU per {name} request",
            figure=throughput[key]["server_cpu_ms"],
            unit="ms",
            limit=limit,
            size=size,
            target_size="make bench",
            at_target_size=True,
        )
        for name, key, limit in (
            ("held", "create_held", 1.0),
            ("policy-approved", "create_approved", 0.8),
        )
    ]


def _decision(results: dict[str, Any]) -> list[Target]:
    found = []
    for route, section in (
        ("same server", "decision_to_agent_same_server"),
        ("other server", "decision_to_agent"),
    ):
        by_waiting = results.get(section)
        if not by_waiting:
            continue
        waiting = max(by_waiting, key=int)
        found.append(
            Target(
                key=f"decision_to_agent_{route.replace(' ', '_')}_p99_ms",
                measure=f"decision to agent p99, decided on the {route}",
                figure=by_waiting[waiting]["p99_ms"],
                unit="ms",
                limit=10.0,
                size=f"{int(waiting):,} waiting",
                target_size=f"{TARGET_WAITING:,} waiting",
                at_target_size=int(waiting) >= TARGET_WAITING,
            )
        )
    return found


def _fan_out(results: dict[str, Any]) -> list[Target]:
    fan_out = results.get("fan_out")
    if not fan_out:
        return []
    sockets = int(fan_out["sockets"])
    return [
        Target(
            key="fan_out_p99_ms",
            measure="fan-out to reviewer sockets p99",
            figure=fan_out["p99_ms"],
            unit="ms",
            limit=100.0,
            size=f"{sockets:,} sockets",
            target_size=f"{TARGET_SOCKETS:,} sockets",
            at_target_size=sockets >= TARGET_SOCKETS,
        )
    ]


def _memory(results: dict[str, Any]) -> list[Target]:
    by_count = results.get("memory", {}).get("websockets")
    if not by_count:
        return []
    count = max(by_count, key=int)
    numbers = by_count[count]
    if int(count) >= TARGET_IDLE_WEBSOCKETS:
        figure, detail = numbers["rss_after_mb"], ""
    else:
        # Linear from the smaller count: the cost per socket read the same at 1,000 and 10,000.
        added_mb = numbers["kb_per_connection"] * TARGET_IDLE_WEBSOCKETS / 1024
        figure = numbers["rss_before_mb"] + added_mb
        detail = (
            f"projected: {numbers['rss_before_mb']:.0f} MB + "
            f"{TARGET_IDLE_WEBSOCKETS:,} x {numbers['kb_per_connection']:.1f} KB"
        )
    return [
        Target(
            key="idle_websockets_rss_mb",
            measure=f"{TARGET_IDLE_WEBSOCKETS:,} idle websockets, one process, RSS",
            figure=figure,
            unit="MB",
            limit=300.0,
            size=f"{int(count):,} sockets",
            target_size=f"{TARGET_IDLE_WEBSOCKETS:,} sockets",
            at_target_size=int(count) >= TARGET_IDLE_WEBSOCKETS,
            detail=detail,
        )
    ]


def _queue(results: dict[str, Any]) -> list[Target]:
    sizes = results.get("queue", {}).get("sizes")
    if not sizes:
        return []
    small, large = sizes[0], sizes[-1]
    pages = [name for name in large["cases"] if name.startswith(QUEUE_PAGE_PREFIX)]
    worst = max(pages, key=lambda name: large["cases"][name]["p95_ms"])
    size = f"{large['pending']:,}+{large['decided']:,}"
    target_size = f"{TARGET_QUEUE_SIZE[0]:,}+{TARGET_QUEUE_SIZE[1]:,}"
    at_target_size = (
        large["pending"] >= TARGET_QUEUE_SIZE[0] and large["decided"] >= TARGET_QUEUE_SIZE[1]
    )
    # "The same query count as at 1,000": no page may make more queries with more rows.
    growth = {
        name: large["cases"][name]["queries"] - small["cases"][name]["queries"]
        for name in pages
        if name in small["cases"]
    }
    grown = max(growth, key=lambda name: growth[name])
    return [
        Target(
            key="queue_page_p95_ms",
            measure="queue page p95 (worst of its cases)",
            figure=large["cases"][worst]["p95_ms"],
            unit="ms",
            limit=100.0,
            size=size,
            target_size=target_size,
            at_target_size=at_target_size,
            detail=worst,
        ),
        Target(
            key="queue_page_added_queries",
            measure=f"queue page queries, more than at {small['pending']:,}+{small['decided']:,}",
            figure=growth[grown],
            unit="queries",
            limit=0.0,
            size=size,
            target_size=target_size,
            at_target_size=at_target_size,
            detail=f"{grown}: {small['cases'][grown]['queries']:.0f} -> "
            f"{large['cases'][grown]['queries']:.0f}",
        ),
    ]


def targets(results: dict[str, Any]) -> list[Target]:
    """Every target whose figure this run measured, in the issue's order."""
    return [
        *_gate(results),
        *_server_cpu(results),
        *_decision(results),
        *_fan_out(results),
        *_memory(results),
        *_queue(results),
    ]


def as_json(found: list[Target]) -> dict[str, dict[str, Any]]:
    """The JSON's `targets` object: the table's rows by key, each with `met`."""
    return {target.key: {**asdict(target), "met": target.met} for target in found}


def table(found: list[Target]) -> str:
    rows = [("measure", "figure", "target", "met", "measured at", "detail")]
    for target in found:
        size = target.size
        if not target.at_target_size:
            size += f" (target: {target.target_size})"
        rows.append(
            (
                target.measure,
                _number(target.figure, target.unit),
                f"<= {_number(target.limit, target.unit)}",
                "yes" if target.met else "no",
                size,
                target.detail,
            )
        )
    lines = aligned(rows, text_columns=(0, 3, 4, 5))
    if any(not target.at_target_size for target in found):
        lines.append(
            "(a size in parentheses: measured below the target's size, so that row is a hint, "
            "not the verdict; `--size full` measures at the targets' sizes)"
        )
    return "\n".join(lines)
