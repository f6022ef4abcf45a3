"""The targets table of `make bench`: each figure beside its target, and the size it was taken at.

Synthetic results (the shapes the sections write); the end-to-end run is in test_bench.py.
"""

from typing import Any

from console.bench.targets import as_json, table, targets


def _latency(p50_ms: float, p99_ms: float, count: float = 400.0) -> dict[str, float]:
    return {"count": count, "errors": 0.0, "p50_ms": p50_ms, "p99_ms": p99_ms}


def _gate() -> dict[str, Any]:
    return {
        "server": "http://127.0.0.1:1",
        "requests": 400.0,
        "by_concurrency": {
            "1": {
                "healthz": _latency(5.0, 8.0),
                "create_approved": _latency(7.0, 20.0),
                "p50_ratio": 1.4,
                "p99_ratio": 2.5,
            },
            "8": {
                "healthz": _latency(10.0, 20.0),
                "create_approved": _latency(16.0, 30.0),
                "p50_ratio": 1.6,
                "p99_ratio": 1.5,
            },
        },
    }


def _queue(pending: int, decided: int, page_queries: float) -> dict[str, Any]:
    return {
        "pending": pending,
        "decided": decided,
        "cases": {
            "queue page, staff": {"p50_ms": 40.0, "p95_ms": 60.0, "queries": page_queries},
            "queue page, filtered": {"p50_ms": 50.0, "p95_ms": 120.0, "queries": 10.0},
            "history page, staff": {"p50_ms": 50.0, "p95_ms": 400.0, "queries": 30.0},
        },
    }


def _results(*, waiting: str = "100", sockets: float = 100.0) -> dict[str, Any]:
    return {
        "gate": _gate(),
        "throughput": {
            "concurrency": 32.0,
            "create_held": {**_latency(40, 90), "server_cpu_ms": 1.2},
            "create_approved": {**_latency(40, 90), "server_cpu_ms": 0.7},
        },
        "decision_to_agent": {"1": _latency(5, 6), waiting: _latency(8, 12)},
        "decision_to_agent_same_server": {waiting: _latency(6, 9)},
        "fan_out": {**_latency(30, 80), "sockets": sockets},
        "memory": {
            "websockets": {
                "1000": {"rss_before_mb": 100.0, "rss_after_mb": 136.0, "kb_per_connection": 20.0}
            }
        },
        "queue": {"sizes": [_queue(1_000, 10_000, 11.0), _queue(10_000, 100_000, 12.0)]},
    }


def test_it_compares_every_figure_with_its_target() -> None:
    found = {target.key: target for target in targets(_results())}

    assert [(key, target.met) for key, target in found.items()] == [
        ("gate_p50_ratio_c1", True),
        ("gate_p99_ratio_c1", False),
        ("gate_p50_ratio_c8", False),
        ("gate_p99_ratio_c8", True),
        ("server_cpu_held_ms", False),
        ("server_cpu_approved_ms", True),
        ("decision_to_agent_same_server_p99_ms", True),
        ("decision_to_agent_other_server_p99_ms", False),
        ("fan_out_p99_ms", True),
        ("idle_websockets_rss_mb", True),
        ("queue_page_p95_ms", False),
        ("queue_page_added_queries", False),
    ]
    assert found["gate_p99_ratio_c1"].detail == "20.0 / 8.0 ms"
    # The worst queue page, not the history page (the issue's target is the queue page).
    assert found["queue_page_p95_ms"].figure == 120.0
    assert found["queue_page_p95_ms"].detail == "queue page, filtered"
    assert found["queue_page_added_queries"].figure == 1.0


def test_it_says_when_a_figure_was_measured_below_its_target_size() -> None:
    small = {target.key: target for target in targets(_results())}
    large = {target.key: target for target in targets(_results(waiting="1000", sockets=1000.0))}

    assert not small["decision_to_agent_same_server_p99_ms"].at_target_size
    assert small["decision_to_agent_same_server_p99_ms"].size == "100 waiting"
    assert large["decision_to_agent_same_server_p99_ms"].at_target_size
    assert not small["fan_out_p99_ms"].at_target_size
    assert large["fan_out_p99_ms"].at_target_size
    assert not small["queue_page_p95_ms"].at_target_size
    rows = table(list(small.values())).splitlines()
    fan_out = next(row for row in rows if row.startswith("fan-out"))
    assert "100 sockets (target: 1,000 sockets)" in fan_out
    assert "measured below the target's size" in rows[-1]


def test_it_projects_10000_idle_websockets_from_a_smaller_count() -> None:
    memory = {target.key: target for target in targets(_results())}["idle_websockets_rss_mb"]

    # 100 MB before, 20 KB a socket: 100 + 10,000 x 20 / 1,024 MB.
    assert round(memory.figure, 1) == 295.3
    assert memory.detail.startswith("projected")
    assert not memory.at_target_size


def test_it_reads_10000_idle_websockets_when_they_were_measured() -> None:
    results = _results()
    results["memory"]["websockets"]["10000"] = {
        "rss_before_mb": 100.0,
        "rss_after_mb": 457.0,
        "kb_per_connection": 36.4,
    }

    memory = {target.key: target for target in targets(results)}["idle_websockets_rss_mb"]

    assert memory.figure == 457.0
    assert memory.at_target_size
    assert not memory.met


def test_it_lists_only_the_parts_that_ran() -> None:
    results = {"decision_to_agent": {"2": _latency(8, 12)}}

    assert [target.key for target in targets(results)] == ["decision_to_agent_other_server_p99_ms"]
    assert targets({}) == []


def test_it_prints_one_row_per_target_and_the_same_in_json() -> None:
    found = targets(_results())

    lines = table(found).splitlines()
    assert [cell.strip() for cell in lines[0].split("|")][:4] == [
        "measure",
        "figure",
        "target",
        "met",
    ]
    gate = next(line for line in lines if "healthz p50, c=1" in line)
    assert [cell.strip() for cell in gate.split("|")][1:4] == ["1.40x", "<= 1.50x", "yes"]
    cpu = next(line for line in lines if line.startswith("server CPU per held"))
    assert [cell.strip() for cell in cpu.split("|")][1:4] == ["1.2 ms", "<= 1.0 ms", "no"]
    assert len(lines) == 2 + len(found) + 1  # header, rule, rows, the note on sizes
    document = as_json(found)
    assert document["gate_p99_ratio_c1"] == {
        "key": "gate_p99_ratio_c1",
        "measure": "gate: policy-approved / healthz p99, c=1",
        "figure": 2.5,
        "unit": "x",
        "limit": 2.0,
        "size": "one server process, 400 calls each",
        "target_size": "one server process",
        "at_target_size": True,
        "detail": "20.0 / 8.0 ms",
        "met": False,
    }
