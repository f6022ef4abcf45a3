"""instance_new builds what the keyword constructor builds, and keeps its signals."""

from datetime import timedelta
from typing import Any

import pytest
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from approvals.models import ApprovalEvent, ApprovalRequest, Impact, Status
from console.new_instances import instance_new
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

DEADLINE = timezone.now() + timedelta(minutes=10)


def _fields_of(instance: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(instance).items() if name != "_state"}


def test_instance_new_builds_what_the_keyword_constructor_builds() -> None:
    agent = AgentFactory()
    values: dict[str, Any] = {
        "agent": agent,  # by object
        "idempotency_key": "k",
        "tool": "issue_refund",
        "arguments": {"amount": 1},
        "impact": Impact.HIGH,
        "deadline_at": DEADLINE,
        "status": Status.PENDING,
        "team_id": None,  # by attname
    }
    mine, theirs = instance_new(ApprovalRequest, **values), ApprovalRequest(**values)
    ours, reference = _fields_of(mine), _fields_of(theirs)
    # A default made for each instance (uuid4): its own value, of the same kind.
    assert ours.pop("code") != reference.pop("code")
    assert ours == reference
    assert "queue_order" not in ours  # generated: left to the database, as the ORM leaves it
    assert mine._state.adding and mine._state.db == theirs._state.db
    assert mine.agent is agent  # cached by its descriptor, as the keyword constructor caches it
    # Mutable defaults are made anew: no two instances share a list.
    assert instance_new(ApprovalRequest).labels is not mine.labels


def test_instance_new_sends_the_constructors_signals_to_whoever_listens() -> None:
    # Built by filling its attributes only while nobody could tell the difference.
    seen: list[tuple[str, Any]] = []

    def before(sender: Any, **kwargs: Any) -> None:
        seen.append(("pre_init", sender))

    def after(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(("post_init", instance.kind))

    pre_init.connect(before, sender=ApprovalEvent)
    post_init.connect(after, sender=ApprovalEvent)
    try:
        event = instance_new(ApprovalEvent, kind="submitted", to_status=Status.PENDING)
    finally:
        pre_init.disconnect(before, sender=ApprovalEvent)
        post_init.disconnect(after, sender=ApprovalEvent)
    assert seen == [("pre_init", ApprovalEvent), ("post_init", "submitted")]
    assert _fields_of(event).keys() == _fields_of(ApprovalEvent()).keys()


def test_instance_new_refuses_what_is_not_a_field() -> None:
    with pytest.raises(TypeError, match="'approval_code'"):
        instance_new(ApprovalEvent, approval_code="x")
    with pytest.raises(ValueError, match='must be a "Agent" instance'):
        instance_new(ApprovalRequest, agent=UserFactory())  # checked by the descriptor
