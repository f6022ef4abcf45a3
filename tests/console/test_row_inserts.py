"""rows_insert stores exactly what bulk_create would (one statement on PostgreSQL, bulk_create
elsewhere)."""

from contextlib import ExitStack
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import (
    ActorType,
    ApprovalEvent,
    ApprovalRequest,
    AuditRecord,
    Decision,
    Impact,
    Status,
)
from approvals.policies.models import Budget, PolicyRule
from console import row_inserts
from console.new_instances import instance_new
from console.row_inserts import ids_assign, rows_insert
from tests.factories import AgentFactory, UserFactory
from tests.wire import round_trips

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["one statement", "a COPY per table"])
def insert_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test both ways: rows_insert picks one by the number of rows."""
    limit = 10**6 if request.param == "one statement" else 0
    monkeypatch.setattr(row_inserts, "ONE_STATEMENT_MAX_ROWS", limit)
    return str(request.param)


DEADLINE = timezone.now() + timedelta(minutes=10)


def _approval(agent: Any, key: str, **fields: Any) -> ApprovalRequest:
    return ApprovalRequest(
        agent=agent,
        idempotency_key=key,
        fingerprint="f" * 64,
        tool="issue_refund",
        arguments={"amount": 12.5, "note": "<b>ünïcode</b> \t tab \\ backslash", "n": None},
        context={"nested": {"list": [1, "two", {"three": 3.0}]}},
        labels=["a", "b"],
        confidence=0.25,
        impact=Impact.HIGH,
        timeout="10m",
        timeout_seconds=600,
        deadline_at=DEADLINE,
        status=Status.PENDING,
        **fields,
    )


def _insert_with_ids(objs: list[Any]) -> None:
    ids_assign(objs)
    rows_insert(objs)


def _stored(model: Any, pk: int) -> dict[str, Any]:
    row = model.objects.filter(pk=pk).values().get()
    row.pop("id")
    return row


def test_it_stores_every_field_as_bulk_create_does() -> None:
    agent = AgentFactory()
    copied = [_approval(agent, "copy-1"), _approval(agent, "copy-2", summary="two")]
    created = [_approval(agent, "orm-1"), _approval(agent, "orm-2", summary="two")]
    _insert_with_ids(copied)
    ApprovalRequest.objects.bulk_create(created)

    for mine, theirs in zip(copied, created, strict=True):
        assert mine.pk is not None
        assert not mine._state.adding
        ours, reference = _stored(ApprovalRequest, mine.pk), _stored(ApprovalRequest, theirs.pk)
        for generated in ("code", "idempotency_key", "created_at", "queue_order"):
            ours.pop(generated), reference.pop(generated)
        assert ours == reference
    stored = ApprovalRequest.objects.get(pk=copied[0].pk)
    assert stored.code == copied[0].code  # the default made when the instance was built
    assert stored.arguments["note"] == "<b>ünïcode</b> \t tab \\ backslash"
    # auto_now_add is stamped at insert, as save() would.
    assert copied[0].created_at is not None
    assert stored.created_at == copied[0].created_at
    assert stored.queue_order == ApprovalRequest.objects.get(pk=created[0].pk).queue_order


def test_it_fills_foreign_keys_from_objects_assigned_before_they_were_saved() -> None:
    agent, reviewer = AgentFactory(), UserFactory()
    approval = _approval(agent, "k")
    decision = Decision(
        approval=approval, status=Status.DENIED, reviewer=reviewer, decided_at=timezone.now()
    )
    event = ApprovalEvent(
        approval=approval, kind="submitted", to_status=Status.PENDING, actor_type=ActorType.AGENT
    )
    _insert_with_ids([approval])
    rows_insert([decision])
    rows_insert([event])
    stored = Decision.objects.get(approval=approval)
    assert (stored.reviewer_id, stored.status) == (reviewer.pk, Status.DENIED)
    assert ApprovalEvent.objects.get(approval=approval).created_at is not None


def test_it_prepares_values_that_need_their_field() -> None:
    """Decimals, IP addresses (blank means NULL) and JSON with the field's encoder."""
    budget = Budget(name="b", scope="agent", ceiling=Decimal("12.34567891"), action="hold")
    _insert_with_ids([budget])
    assert Budget.objects.get(pk=budget.pk).ceiling == Decimal("12.34567891")
    record = AuditRecord(
        sequence=10_000,
        created_at=timezone.now(),
        action="x",
        actor_type="system",
        ip_address="",
        before={"at": "2026-01-01"},
        prev_hash="0" * 64,
        hash="1" * 64,
    )
    # The audit trigger refuses changes, not inserts; this row is rolled back with the test.
    _insert_with_ids([record])
    stored = AuditRecord.objects.get(pk=record.pk)
    assert (stored.ip_address, stored.before, stored.context) == (None, {"at": "2026-01-01"}, {})


def test_ip_addresses_are_stored_as_bulk_create_stores_them() -> None:
    addresses = ["127.0.0.1", "2001:DB8:0:0:0:0:0:1", "::ffff:192.0.2.1", "", None]
    ours: list[AuditRecord] = []
    reference: list[AuditRecord] = []
    for number, address in enumerate(addresses):
        for records, offset in ((ours, 0), (reference, 100)):
            records.append(
                AuditRecord(
                    sequence=20_000 + offset + number,
                    created_at=timezone.now(),
                    action="x",
                    actor_type="system",
                    ip_address=address,
                    prev_hash="0" * 64,
                    hash=f"{offset + number:064d}",
                )
            )
    _insert_with_ids(ours)
    AuditRecord.objects.bulk_create(reference)
    stored = [AuditRecord.objects.get(pk=record.pk).ip_address for record in ours]
    expected = [AuditRecord.objects.get(pk=record.pk).ip_address for record in reference]
    assert stored == expected == ["127.0.0.1", "2001:db8::1", "::ffff:192.0.2.1", None, None]


def test_a_unique_key_violation_is_djangos_integrity_error_and_stores_nothing() -> None:
    agent = AgentFactory()
    _insert_with_ids([_approval(agent, "same")])
    with pytest.raises(IntegrityError), transaction.atomic():
        _insert_with_ids([_approval(agent, "other"), _approval(agent, "same")])
    assert ApprovalRequest.objects.filter(agent=agent).count() == 1


def test_it_refuses_a_foreign_key_to_an_unsaved_object() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("bulk_create's own check applies elsewhere (its message differs)")
    approval = _approval(AgentFactory(), "k")
    event = ApprovalEvent(
        approval=approval, kind="submitted", to_status=Status.PENDING, actor_type=ActorType.AGENT
    )
    with pytest.raises(ValueError, match="'approval' refers to an unsaved object"):
        rows_insert([event])


def test_rows_without_ids_are_numbered_by_the_database() -> None:
    agent = AgentFactory()
    approval = _approval(agent, "k")
    _insert_with_ids([approval])
    events = [
        ApprovalEvent(
            approval=approval, kind=kind, to_status=Status.PENDING, actor_type=ActorType.AGENT
        )
        for kind in ("submitted", "commented")
    ]
    rows_insert(events)
    stored = list(ApprovalEvent.objects.filter(approval=approval).order_by("id"))
    assert [event.kind for event in stored] == ["submitted", "commented"]
    assert all(event.pk for event in stored)


def test_it_refuses_instances_only_some_of_which_have_ids() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("bulk_create takes both")
    agent = AgentFactory()
    with_id, without = _approval(agent, "a"), _approval(agent, "b")
    ids_assign([with_id])
    with pytest.raises(ValueError, match="every instance an id, or none"):
        rows_insert([with_id, without])
    assert not ApprovalRequest.objects.filter(agent=agent).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="elsewhere it is bulk_create")
def test_a_few_rows_of_several_models_go_in_one_statement(insert_path: str) -> None:
    # One round trip for a request, its event and its audit record: a statement each was most
    # of what a lone request waited on.
    agent = AgentFactory()
    approval = _approval(agent, "together")
    ids_assign([approval])
    event = ApprovalEvent(approval=approval, kind="submitted", to_status=Status.PENDING)
    with CaptureQueriesContext(connection) as queries:
        rows_insert([approval], [event])
    if insert_path == "one statement":
        assert len(queries.captured_queries) == 1
    stored = ApprovalEvent.objects.get(approval=approval)
    assert (stored.kind, stored.approval.tool) == ("submitted", "issue_refund")


def test_then_runs_after_the_rows_and_sees_them(insert_path: str) -> None:
    # The audit chain head's move must see the records it moves to (its guard checks).
    approval = _approval(AgentFactory(), "then")
    ids_assign([approval])
    mark = 'UPDATE "approvals_approvalrequest" SET summary = %s WHERE idempotency_key = %s'
    trips: list[str] = []
    with ExitStack() as watching:
        if connection.vendor == "postgresql":
            trips = watching.enter_context(round_trips())
        rows_insert([approval], then=(mark, ["seen", "then"]))
    assert ApprovalRequest.objects.get(idempotency_key="then").summary == "seen"
    if connection.vendor == "postgresql" and insert_path == "one statement":
        assert len(trips) == 1, trips  # one round trip for both


def test_floats_json_has_no_number_for_are_stored_as_bulk_create_stores_them() -> None:
    # JSON has no NaN or infinities; the one-statement path sends its rows as JSON.
    values = [float("nan"), float("inf"), float("-inf"), 1e-300]
    mine = [PolicyRule(name=f"mine-{n}", total_above=value) for n, value in enumerate(values)]
    theirs = [PolicyRule(name=f"orm-{n}", total_above=value) for n, value in enumerate(values)]
    _insert_with_ids(mine)
    PolicyRule.objects.bulk_create(theirs)
    for ours, reference in zip(mine, theirs, strict=True):
        stored = PolicyRule.objects.get(pk=ours.pk).total_above
        expected = PolicyRule.objects.get(pk=reference.pk).total_above
        assert str(stored) == str(expected)  # nan == nan is false; their texts compare
        # (SQLite stores NaN as NULL, bulk_create too.)
        assert stored is not None or connection.vendor == "sqlite"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite stores it")
def test_text_postgresql_cannot_store_is_a_database_error_and_stores_nothing() -> None:
    # A NUL character: refused by PostgreSQL's text (and JSON) types, however the row travels.
    agent = AgentFactory()
    with pytest.raises(DatabaseError), transaction.atomic():
        _insert_with_ids([_approval(agent, "nul", summary="before\x00after")])
    assert not ApprovalRequest.objects.filter(agent=agent).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="elsewhere it is bulk_create")
def test_one_statement_is_the_same_text_for_any_number_of_rows(insert_path: str) -> None:
    """Its rows go as one parameter per table, so it is prepared once, whatever the count, and
    psycopg keeps its conversion (it keeps none for more than 50 parameters)."""
    if insert_path != "one statement":
        pytest.skip("the COPY's text never depended on the rows")
    agent = AgentFactory()
    sent: list[tuple[str, int]] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        sent.append((sql, len(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        for count in (1, 3):
            approvals = [_approval(agent, f"{count}-{n}") for n in range(count)]
            ids_assign(approvals)
            events = [
                ApprovalEvent(approval=a, kind="submitted", to_status=Status.PENDING)
                for a in approvals
            ]
            rows_insert(approvals, events)
    inserts = [(sql, count) for sql, count in sent if sql.lstrip().startswith("WITH")]
    assert len(inserts) == 2
    assert inserts[0][0] == inserts[1][0]
    assert inserts[0][1] == inserts[1][1] == 2  # a parameter per table
    assert ApprovalEvent.objects.filter(approval__agent=agent).count() == 4


def test_instance_new_refers_to_an_object_that_gets_its_id_later() -> None:
    approval = _approval(AgentFactory(), "later")
    event = instance_new(
        ApprovalEvent, approval=approval, kind="submitted", to_status=Status.PENDING
    )
    assert event.approval_id is None
    _insert_with_ids([approval])
    rows_insert([event])
    assert ApprovalEvent.objects.get(approval=approval).kind == "submitted"


def test_json_values_go_as_their_text_and_empty_ones_too() -> None:
    """JSON columns, empty or not, and values JSON has no type for, stored as bulk_create
    stores them (the one-statement path sends the rows as JSON)."""
    agent = AgentFactory()
    mine = [_approval(agent, "json-1", links=[]), _approval(agent, "json-2")]
    theirs = [_approval(agent, "json-3", links=[]), _approval(agent, "json-4")]
    for approval in (mine[0], theirs[0]):
        approval.context, approval.labels = {}, []
    for approval in (mine[1], theirs[1]):
        approval.context = {"at": "2026-01-01", "n": [1.5, None], "empty": {}}
    _insert_with_ids(mine)
    ApprovalRequest.objects.bulk_create(theirs)
    for ours, reference in zip(mine, theirs, strict=True):
        stored, expected = _stored(ApprovalRequest, ours.pk), _stored(ApprovalRequest, reference.pk)
        for generated in ("code", "idempotency_key", "created_at", "queue_order"):
            stored.pop(generated), expected.pop(generated)
        assert stored == expected
        assert ApprovalRequest.objects.get(pk=ours.pk).code == ours.code  # a UUID, as text


@pytest.mark.skipif(connection.vendor != "postgresql", reason="elsewhere it is bulk_create")
def test_auto_now_fields_are_one_moment_for_every_row_of_an_insert() -> None:
    """As PostgreSQL's now() is its transaction's: one clock read, not one per row."""
    agent = AgentFactory()
    approvals = [_approval(agent, f"moment-{n}") for n in range(3)]
    ids_assign(approvals)
    events = [
        ApprovalEvent(approval=approval, kind="submitted", actor_type=ActorType.AGENT)
        for approval in approvals
    ]
    rules = [PolicyRule(name=f"moment-{n}") for n in range(2)]  # auto_now and auto_now_add
    ids_assign(rules)
    before = timezone.now()
    rows_insert(approvals, events, rules)
    after = timezone.now()

    set_on_instances = {approval.created_at for approval in approvals}
    set_on_instances |= {event.created_at for event in events}
    set_on_instances |= {rule.created_at for rule in rules} | {rule.updated_at for rule in rules}
    assert len(set_on_instances) == 1
    (moment,) = set_on_instances
    assert before <= moment <= after
    stored = set(
        ApprovalRequest.objects.filter(pk__in=[a.pk for a in approvals]).values_list(
            "created_at", flat=True
        )
    )
    stored |= set(
        ApprovalEvent.objects.filter(approval__in=approvals).values_list("created_at", flat=True)
    )
    for rule in PolicyRule.objects.filter(pk__in=[r.pk for r in rules]):
        stored |= {rule.created_at, rule.updated_at}
    assert stored == {moment}
    # A DateTimeField that is not auto_now(_add) keeps the value it was given.
    assert {
        a.deadline_at for a in ApprovalRequest.objects.filter(pk__in=[a.pk for a in approvals])
    } == {DEADLINE}
