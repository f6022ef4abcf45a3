"""`make bench` end to end in its tiny size: every figure is there and is a number.

Not a speed test (the bench prints speeds; tests never time them): it proves the runner starts
the console, drives it from its own process and writes the JSON the README table comes from.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.test_multiprocess import _test_database_url

needs_servers = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql"
    or not settings.REDIS_URL,
    reason="the bench runs the production way: PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)",
)

LATENCY_KEYS = {"count", "errors", "p50_ms", "p99_ms"}


def _assert_numbers(figures: dict, keys: set[str]) -> None:  # type: ignore[type-arg]
    assert keys <= figures.keys(), f"missing {keys - figures.keys()}"
    for key in keys:
        assert isinstance(figures[key], int | float), (key, figures[key])


def test_it_serves_no_bench_endpoint_unless_asked(client) -> None:  # type: ignore[no-untyped-def]
    assert settings.BENCH_ENDPOINTS is False
    assert client.get("/bench/bare").status_code == 404


@needs_servers
@pytest.mark.django_db(transaction=True)
def test_it_writes_every_figure_as_a_number(tmp_path: Path) -> None:
    output = tmp_path / "latest.json"
    completed = subprocess.run(
        [sys.executable, "-m", "console.bench", "--size", "tiny", "--output", str(output)],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": _test_database_url()},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()[-3000:]
    assert "create held request" in completed.stdout.decode()

    results = json.loads(output.read_text())
    throughput = results["throughput"]
    _assert_numbers(throughput, {"concurrency", "held_to_bare_ratio"})
    _assert_numbers(throughput["bare"], LATENCY_KEYS | {"rps"})
    _assert_numbers(throughput["create_held"], LATENCY_KEYS | {"rps"})
    assert throughput["create_held"]["count"] > 0
    assert set(results["decision_to_agent"]) == {"1", "2"}
    for figures in results["decision_to_agent"].values():
        _assert_numbers(figures, LATENCY_KEYS)
    _assert_numbers(results["fan_out"], LATENCY_KEYS | {"sockets", "expected"})
    # The tiny run is small enough that nothing should go missing.
    assert results["fan_out"]["count"] == results["fan_out"]["expected"]
