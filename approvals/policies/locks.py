"""The lock every new request's verdict is decided under: its agent's row, then its halts.

Part of policy evaluation (approvals.policies.evaluation), in a module of its own because it is
the creation hot path's first round trip: fixed statements, sent together and prepared once
per connection (console.hot_statements).
"""

from collections.abc import Sequence

from django.db import connection

from agents.models import Agent, AgentHalt
from approvals.policies.loading import policy_version_columns
from console.hot_statements import (
    RidesAlong,
    columns_of,
    instance_from_row,
    statements_rows,
    values_in,
)


def agents_lock_and_halts(
    agent_ids: list[int],
    *,
    exclusive: bool,
    with_policy_version: bool = False,
    along_with: Sequence[RidesAlong] = (),
) -> tuple[tuple[object, ...] | None, dict[int, AgentHalt]]:
    """Lock the agents' rows until commit, always in id order (two batches sharing agents
    cannot deadlock), then read their halts; (the policy's version if asked, the halts).

    Exclusive: decisions per agent are serialized, so the throttle and total counts see every
    auto-approval committed before, and none can be committed in between.
    Shared (PostgreSQL's FOR SHARE): creations of one agent do not wait for each other, yet a
    halt, which locks the row exclusively, still waits for every creation in flight and is
    seen by every one after it: no request slips between a halt and its cancellations.
    SQLite serializes every writer anyway and has no row locks.

    The halts are a statement of their own, not an EXISTS on the locking one: on PostgreSQL a
    statement that waited for the lock still reads with the snapshot it started with, and would
    miss a halt committed while it waited (the race test catches exactly that). Both go in one
    round trip (console.hot_statements): the server still starts the second only once the
    first holds its locks.

    `with_policy_version`: also read the policy's version with the lock, as a statement of its
    own just before would have. `along_with`: statements of the caller's that need nothing
    before them (the new requests' ids), sent in the same round trip.
    """
    version = f", {policy_version_columns()}" if with_policy_version else ""
    lock = " FOR UPDATE" if exclusive else " FOR SHARE"
    if connection.vendor != "postgresql":
        lock = ""
    agents_in, agent_params = values_in("id", agent_ids)
    halts_in, halt_params = values_in("agent_id", agent_ids)
    # Our own tables and columns in the text; every value is a parameter.
    lock_sql = f"SELECT id{version} FROM {_AGENTS} WHERE {agents_in} ORDER BY id{lock}"  # noqa: S608
    halt_columns = columns_of(AgentHalt)
    halts_sql = f"SELECT {halt_columns} FROM {_HALTS} WHERE {halts_in} AND resumed_at IS NULL"  # noqa: S608
    locked, halt_rows, *along_rows = statements_rows(
        [(lock_sql, agent_params), (halts_sql, halt_params)]
        + [rider.statement() for rider in along_with]
    )
    for rider, rows in zip(along_with, along_rows, strict=True):
        rider.take(rows)
    halts = [instance_from_row(AgentHalt, row) for row in halt_rows]
    version_read = tuple(locked[0][1:]) if with_policy_version and locked else None
    return version_read, {halt.agent_id: halt for halt in halts}


_AGENTS = Agent._meta.db_table
_HALTS = AgentHalt._meta.db_table
