"""What happens to agents and runs, as typed events (console.events carries them).

Agents sit below approvals: approvals react to these (ApprovalsConfig.ready() subscribes), and
nothing here imports approvals.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class RunHalted:
    """A run was closed as halted, inside the closing transaction: nothing waiting in it may
    still be approved, so subscribers act in the same transaction."""

    run_id: int
    # Why the run takes no new requests, as the agent is told.
    reason: str


@dataclass(frozen=True)
class TracedToolResult:
    """A tool call in a run's trace that names the approval request gating it and says how it
    ended: a result, or an error."""

    approval_code: str
    # "succeeded" (a result), "failed" (an error), "not_executed" (metadata.ran is false).
    status: str
    result: Any
    error: str
    cost: Decimal | None


@dataclass(frozen=True)
class ToolResultsTraced:
    """Trace events carrying tool results for approval requests were appended, inside the
    appending transaction: each counts as its request's outcome (source trace)."""

    agent_id: int
    results: list[TracedToolResult]
