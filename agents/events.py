"""What happens to agents and runs, as typed events (console.events carries them).

Agents sit below approvals: approvals react to these (ApprovalsConfig.ready() subscribes), and
nothing here imports approvals.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class RunHalted:
    """A run was closed as halted, inside the closing transaction: nothing waiting in it may
    still be approved, so subscribers act in the same transaction."""

    run_id: int
    # Why the run takes no new requests, as the agent is told.
    reason: str
