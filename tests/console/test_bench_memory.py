"""The memory benchmark's pure parts: reading /proc, comparing heap snapshots, the table.

No figure is checked here (the bench prints them); the end-to-end run is in test_bench.py.
"""

import os
import time
import tracemalloc
from pathlib import Path

from console.bench.memory import (
    ProcessMemory,
    heap_growth,
    parse_cpu_ticks,
    parse_status,
    process_memory,
    table,
)

STATUS = """Name:\tuvicorn
Umask:\t0022
State:\tS (sleeping)
VmPeak:\t 1400000 kB
VmRSS:\t  103024 kB
RssAnon:\t   80000 kB
Threads:\t9
"""


def test_it_reads_the_resident_set_and_the_thread_count() -> None:
    assert parse_status(STATUS) == ProcessMemory(rss_kb=103024, threads=9)


def test_it_reads_this_process_from_proc() -> None:
    memory = process_memory(os.getpid())

    assert memory.rss_kb > 1000
    assert memory.threads >= 1


def test_it_adds_user_and_system_time_whatever_the_command_name() -> None:
    # A command name may hold spaces and parentheses; fields 14 and 15 count from after it.
    stat = "4242 (python (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 9 0 77"

    assert parse_cpu_ticks(stat) == 287


def _cpu_ticks() -> int:
    return parse_cpu_ticks(Path(f"/proc/{os.getpid()}/stat").read_text())


def test_it_reads_this_process_cpu_time() -> None:
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    before = _cpu_ticks()
    busy_until = time.process_time() + 0.2
    while time.process_time() < busy_until:
        pass  # burn CPU: this process's user time must grow
    after = _cpu_ticks()
    times = os.times()

    # Busy for 0.2 s of CPU: at least a tenth of a second (ticks are coarse) more, read from
    # /proc, and the same total the kernel gives os.times().
    assert after - before >= ticks_per_second // 10
    assert abs(after / ticks_per_second - (times.user + times.system)) < 0.1


def test_heap_growth_names_the_line_that_allocated() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = [bytearray(1024) for _ in range(2000)]  # about 2 MB from one line
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()

    growth = heap_growth(before, after, top=3)

    assert len(kept) == 2000
    assert "test_bench_memory.py" in growth[0], growth


def test_the_table_shows_kilobytes_per_connection() -> None:
    figures = {"rss_before_mb": 100.0, "rss_after_mb": 1100.0, "kb_per_connection": 102.4}
    figures["errors"] = 3.0

    text = table({"long_polls": {"10000": figures}})

    row = text.splitlines()[-1]
    assert row.startswith("10,000 idle long polls")
    assert [cell.strip() for cell in row.split("|")[1:]] == ["100", "1100", "102.4", "3"]
