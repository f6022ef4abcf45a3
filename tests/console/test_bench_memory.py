"""The memory benchmark's pure parts: reading /proc, comparing heap snapshots, the table.

No figure is checked here (the bench prints them); the end-to-end run is in test_bench.py.
"""

import os
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


def test_it_reads_this_process_cpu_time() -> None:
    assert parse_cpu_ticks(Path(f"/proc/{os.getpid()}/stat").read_text()) >= 0


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
