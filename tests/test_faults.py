"""Fault injection: Redis stopped, PostgreSQL restarted and the Celery worker killed, under load.

A whole console (two servers, a worker, beat) runs on a PostgreSQL and a Redis server this test
started (tests/fault_cluster.py); agents submit and wait while a reviewer decides
(tests/fault_actors.py). After each fault the suite counts, from the agents', the receivers' and
the database's side: every request created is in the database with its decision, every decision
reached its agent, every email and AAP webhook arrived once as its receiver de-duplicates them
(by Message-ID and webhook-id), and the audit chain verifies. It prints one line per fault, past
pytest's capture, so the counts are in every log (docs/operations.md, "Fault injection"):

    [fault] Redis stopped and restarted: created 8, in database 8, decisions delivered 8, ...

Runs in the PostgreSQL + Redis run of the suite (embedded runs skip it), in about a minute.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.fault_actors import POLL_WAIT_SECONDS, Phase, Tally, Ticket, Workload, tally
from tests.fault_cluster import FaultCluster, fault_cluster, wait_for, webhook_copies

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not settings.REDIS_URL,
        reason="the fault suite runs with the PostgreSQL + Redis suite (DATABASE_URL, REDIS_URL)",
    ),
    # The cluster's start (initdb, migrate, four processes) counts toward the first test.
    pytest.mark.timeout(240),
]

# Long enough to kill the worker while the receiver holds its answer; it answers nobody then.
HOLD_SECONDS = 8.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultCluster]:
    with fault_cluster(Path(tmp_path_factory.mktemp("faults"))) as started:
        yield started


@pytest.fixture(scope="module")
def workload(cluster: FaultCluster) -> Iterator[Workload]:
    started = Workload(cluster)
    yield started
    started.close()


def _native(tickets: list[Ticket]) -> list[Ticket]:
    return [ticket for ticket in tickets if ticket.kind == "native"]


def _redis_stopped_and_restarted(workload: Workload) -> Phase:
    phase = Phase("Redis stopped and restarted", workload)
    redis = workload.cluster.redis
    before = phase.start(native=3, aap=2)
    workload.wait_emailed(before)
    redis.stop()
    # Decided while Redis is down: no push can wake the parked polls, so they read instead.
    workload.decide(before)
    workload.wait_answered(_native(before), timeout=POLL_WAIT_SECONDS)
    late = max(ticket.latency for ticket in _native(before))
    phase.notes.append(f"decisions reached parked polls within {late:.1f} s")
    # By the fallback read, a second or two late; not at the end of the polls' wait.
    assert late < POLL_WAIT_SECONDS / 3, f"a parked poll had its decision {late:.1f} s late"
    # PostgreSQL is the truth: requests are still created, their emails wait for the broker.
    during = phase.start(native=2, aap=1)
    workload.wait_created(during)
    redis.start()
    # The restarted Redis is empty: beat's sweeps enqueue again what the dead broker lost.
    workload.wait_emailed(during)
    workload.decide(during)
    workload.wait_answered(phase.tickets)
    return phase.end()


def _postgres_restarted(workload: Workload) -> Phase:
    phase = Phase("PostgreSQL restarted", workload)
    postgres = workload.cluster.postgres
    before = phase.start(native=3, aap=2)
    workload.wait_emailed(before)
    unavailable = workload.calls.unavailable
    postgres.stop()
    # Agents submit and the reviewer decides into the outage: 503s, retried until it is back.
    during = phase.start(native=2, aap=1)
    deciding = workload.pool.submit(workload.decide, before)
    wait_for(
        lambda: workload.calls.unavailable > unavailable,
        timeout=20,
        what="a 503 while PostgreSQL is down",
    )
    postgres.start()
    deciding.result(timeout=60)
    workload.wait_emailed(during)
    workload.decide(during)
    workload.wait_answered(phase.tickets)
    return phase.end()


def _worker_killed_mid_delivery(workload: Workload) -> Phase:
    phase = Phase("Celery worker killed mid-delivery (SIGKILL)", workload)
    cluster = workload.cluster
    mail = cluster.mail
    mail.holding.clear()
    mail.hold_next = HOLD_SECONDS
    tickets = phase.start(native=3, aap=2)
    wait_for(mail.holding.is_set, timeout=30, what="an email held by the slow mail server")
    # The mail server has the message; the worker dies before it hears "250".
    cluster.kill_worker()
    cluster.start_worker()
    # Each row marked sent: the held one only after its lease ran out and it was sent again.
    workload.wait_emailed(tickets)
    [held] = mail.held_codes
    assert sum(mail.copies()[held].values()) == 2, mail.copies()[held]
    workload.decide(tickets)
    workload.wait_answered(tickets)
    return phase.end()


def _show(*lines: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Print past pytest's capture: the counts belong in every log, not only under -s."""
    with capsys.disabled():
        print()
        for line in lines:
            print(line)


def _report(cluster: FaultCluster, tickets: list[Ticket]) -> dict:
    report = cluster.console_python("report", stdin=json.dumps([t.code for t in tickets]))
    assert isinstance(report, dict)
    return report


def test_it_loses_nothing_when_redis_postgres_and_the_worker_fail_under_load(
    cluster: FaultCluster, workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.heal()
    phases = [
        _redis_stopped_and_restarted(workload),
        _postgres_restarted(workload),
        _worker_killed_mid_delivery(workload),
    ]
    report = _report(cluster, [ticket for phase in phases for ticket in phase.tickets])
    tallies: list[Tally] = [tally(phase, report) for phase in phases]
    audit = report["audit"]
    _show(
        f"[fault] cluster up in {cluster.started_in:.1f} s",
        *(counts.line() for counts in tallies),
        f"[fault] audit chain: {audit['checked']} records, broken: {audit['broken']}",
        capsys=capsys,
    )

    for counts in tallies:
        assert counts.problems == [], counts.line()
        assert counts.lost == 0, counts.line()
    assert audit["broken"] is None
    _, postgres_down, worker_killed = tallies
    assert postgres_down.unavailable > 0  # the outage was felt, as 503s, and survived
    assert worker_killed.notifications_sent_again >= 1  # the held email, sent again
    cluster.assert_processes_alive()


def test_a_webhook_whose_worker_is_killed_mid_delivery_arrives_once(
    cluster: FaultCluster, workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.heal()
    phase = Phase("AAP webhook, worker killed mid-delivery", workload)
    receiver = cluster.webhooks
    [ticket] = phase.start(native=0, aap=1)
    workload.wait_emailed([ticket])
    receiver.holding.clear()
    receiver.hold_next = HOLD_SECONDS
    workload.decide([ticket])
    wait_for(receiver.holding.is_set, timeout=30, what="the webhook held by the slow receiver")
    cluster.kill_worker()
    # Mid-delivery: the receiver has the event, the row is not marked delivered.
    assert not cluster.webhook_delivered(ticket.code)
    cluster.start_worker()
    # The lease runs out, beat's sweep enqueues the row, the new worker sends it again.
    wait_for(
        lambda: sum(webhook_copies(receiver).get(ticket.code, {}).values()) >= 2,
        timeout=30,
        what="the webhook being sent again after the lease",
    )
    wait_for(
        lambda: cluster.webhook_delivered(ticket.code),
        timeout=20,
        what="the webhook row marked delivered",
    )
    workload.wait_answered([ticket])
    counts = tally(phase.end(), _report(cluster, [ticket]))
    _show(counts.line(), capsys=capsys)

    copies = webhook_copies(receiver)[ticket.code]
    assert len(copies) == 1  # one webhook-id: the receiver sees one event
    assert sum(copies.values()) == 2  # sent twice: once to the dead worker, once after the lease
    assert counts.problems == [] and counts.lost == 0, counts.line()
    cluster.assert_processes_alive()
