"""Bench-only endpoints (BENCH_ENDPOINTS=true): the bare baseline, and the serving process's id."""

import os
import re
import tracemalloc

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from agents.api.intake import intake_written

SNAPSHOT_NAME = re.compile(r"^[a-z0-9-]{1,40}$")


def bare(request: HttpRequest) -> JsonResponse:
    # Same middleware stack, same server process as the agent API: the ratio between the two is
    # the figure that survives a noisy machine.
    return JsonResponse({"ok": True})


def process(request: HttpRequest) -> HttpResponse:
    """Which process answered, so the memory benchmark reads that process's RSS from outside,
    and how many batches its intake has written, with how many requests in them.

    `?snapshot=NAME` with tracemalloc on (PYTHONTRACEMALLOC) also writes the process's heap
    snapshot to var/bench/heap-NAME.tracemalloc, for the benchmark to diff after the fact.
    """
    batches, requests = intake_written()
    answer: dict[str, object] = {
        "pid": os.getpid(),
        "tracing": tracemalloc.is_tracing(),
        "intake_batches": batches,
        "intake_requests": requests,
    }
    if name := request.GET.get("snapshot"):
        if not SNAPSHOT_NAME.match(name):
            return HttpResponseBadRequest("snapshot: lowercase letters, digits and dashes")
        if tracemalloc.is_tracing():
            path = settings.VAR_DIR / "bench" / f"heap-{name}.tracemalloc"
            path.parent.mkdir(parents=True, exist_ok=True)
            tracemalloc.take_snapshot().dump(str(path))
            answer["snapshot"] = str(path)
    return JsonResponse(answer)
