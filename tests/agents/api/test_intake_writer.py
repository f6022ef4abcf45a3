"""The intake's writer thread (agents/api/intake.py): it answers the agents once their batch has
committed, then asks whether any reviewer listens before waking the push thread for them."""

import uuid

import pytest
from django.core.cache import cache

from agents.api.fast_path import _render_created
from agents.api.intake import IntakeBatcher, IntakeItem, IntakeOutcome
from agents.services import credential_issue
from approvals import realtime
from console.request_context import RequestContext
from tests.factories import AgentFactory, build_submission

# transaction=True: the writer closes its connection after each batch, as in a server.
pytestmark = pytest.mark.django_db(transaction=True)


def _item(token: str) -> IntakeItem:
    return IntakeItem(
        token=token,
        idempotency_key=str(uuid.uuid4()),
        submission=build_submission(),
        origin=RequestContext(request_id="r", ip_address="127.0.0.1", user_agent="t"),
    )


def test_the_push_thread_is_woken_only_while_a_reviewer_listens() -> None:
    token = credential_issue(agent=AgentFactory()).plaintext
    batcher = IntakeBatcher(_render_created)
    answered: list[list[IntakeOutcome]] = []

    cache.delete(realtime.LISTENING_KEY)  # no reviewer socket open anywhere
    quiet, to_push_quiet = batcher._write([_item(token)], answered.append)
    cache.set(realtime.LISTENING_KEY, True, 60)  # as an open socket keeps it
    heard, to_push_heard = batcher._write([_item(token)], answered.append)

    assert answered == [quiet, heard]  # every batch answered, listened to or not
    assert quiet[0].result is not None and quiet[0].result.created
    assert to_push_quiet == []
    assert heard[0].result is not None and heard[0].result.approval is not None
    assert to_push_heard == [heard[0].result.approval.pk]


def test_a_batch_whose_answers_fail_answers_nobody_from_the_thread() -> None:
    def render_fails(result: object) -> bytes:
        raise RuntimeError("the answer cannot be rendered")

    batcher = IntakeBatcher(render_fails)
    answered: list[list[IntakeOutcome]] = []
    token = credential_issue(agent=AgentFactory()).plaintext
    with pytest.raises(RuntimeError):
        batcher._write([_item(token)], answered.append)
    assert answered == []  # the caller gives each agent the error instead
