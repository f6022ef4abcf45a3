"""`python -m console.bench.writer`: the intake writer alone, in process, without HTTP.

For a change to creation's Python (console.row_inserts, approvals.services.creation, the audit
trail): it writes batches of policy-approved (or, with --held, held) requests through
IntakeBatcher._write against the bench database, and prints the writer thread's CPU per request.

On a machine shared with others, CPU times move more than such a change; instruction counts do
not. Under `valgrind --tool=callgrind`, the difference of the counts of two runs that differ
only in --batches, divided by the requests between them, is the instructions per request with
start-up and warm-up cancelled out (docs/benchmarks.md, "Running it").
"""

import argparse
import statistics
import time
import uuid

from console.bench.__main__ import _environment, prepare
from console.bench.calls import APPROVED_BODY, HELD_BODY

WARM_UP_BATCHES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=16, help="requests per batch (default 16)")
    parser.add_argument("--batches", type=int, default=50, help="batches measured (default 50)")
    parser.add_argument("--held", action="store_true", help="requests no policy decides")
    arguments = parser.parse_args()
    credentials = prepare(_environment())

    # After prepare(): it sets Django up against the bench database.
    from agents.api.fast_path import _render_created
    from agents.api.intake import IntakeBatcher, IntakeItem
    from agents.api.native import approval_request_submission
    from console.request_context import RequestContext

    body = HELD_BODY if arguments.held else APPROVED_BODY

    def batch() -> list[IntakeItem]:
        return [
            IntakeItem(
                token=credentials["agent_token"],
                idempotency_key=str(uuid.uuid4()),
                submission=approval_request_submission(dict(body)),
                origin=RequestContext(request_id=uuid.uuid4().hex, ip_address="127.0.0.1"),
            )
            for _ in range(arguments.batch)
        ]

    writer = IntakeBatcher(_render_created)
    for _ in range(WARM_UP_BATCHES):
        writer._write(batch(), lambda outcomes: None)
    batches = [batch() for _ in range(arguments.batches)]  # built before the clock starts
    per_request_ms = []
    for items in batches:
        started = time.thread_time()
        writer._write(items, lambda outcomes: None)
        per_request_ms.append(1000 * (time.thread_time() - started) / len(items))
    print(
        f"intake writer CPU per request, batches of {arguments.batch} "
        f"{'held' if arguments.held else 'policy-approved'} requests: "
        f"median {statistics.median(per_request_ms):.3f} ms, "
        f"lowest {min(per_request_ms):.3f} ms ({arguments.batches} batches)"
    )


if __name__ == "__main__":
    main()
