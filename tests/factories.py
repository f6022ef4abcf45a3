"""Test data factories. Agents come with a usable plaintext credential."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from agents.models import Agent
from agents.services import credential_issue
from approvals.models import ApprovalRequest, Decision, Impact, NotificationPreference, Status, Team
from approvals.policies.models import Outcome, PolicyRule, RuleState
from approvals.services import Submission

PASSWORD = "correct horse battery staple"


class ModelFactory[T](factory.django.DjangoModelFactory[T]):
    """Typing aid: calling a factory returns its model instance, as factory_boy does at runtime.

    factory_boy leaves BaseFactory.__new__ unannotated, so mypy would take `AgentFactory()` for
    an AgentFactory.
    """

    if TYPE_CHECKING:

        def __new__(cls, *args: Any, **kwargs: Any) -> T: ...  # type: ignore[misc]


class UserFactory(ModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"reviewer{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    password = factory.django.Password(PASSWORD)


class AgentFactory(ModelFactory[Agent]):
    class Meta:
        model = Agent
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"agent-{n}")

    @factory.post_generation
    def operators(self, create: bool, extracted: Iterable[User] | None, **kwargs: object) -> None:
        if create and extracted:
            self.operators.add(*extracted)


def reviewer_api_token(user: User) -> str:
    """A reviewer API token for `user`, as `Authorization: Token <this>` expects."""
    from approvals.reviewer_tokens import reviewer_token_issue

    return reviewer_token_issue(user=user).plaintext


def agent_with_token(**kwargs: object) -> tuple[Agent, str]:
    agent = AgentFactory(**kwargs)
    return agent, credential_issue(agent=agent).plaintext


class ApprovalRequestFactory(ModelFactory[ApprovalRequest]):
    class Meta:
        model = ApprovalRequest

    agent = factory.SubFactory(AgentFactory)
    idempotency_key = factory.Sequence(lambda n: f"key-{n}")
    fingerprint = "0" * 64
    tool = "issue_refund"
    arguments = factory.LazyFunction(lambda: {"payment_id": "pay_1", "amount": 4900})
    summary = "Refund a duplicate charge."
    reasoning = "The customer was charged twice."
    confidence = 0.6
    impact = Impact.HIGH
    timeout = "30m"
    timeout_seconds = 1800
    deadline_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=30))


def build_submission(tool: str = "issue_refund", **overrides: Any) -> Submission:
    """What an agent asks, as the API layer hands it to the services: a held-for-review refund
    unless `overrides` say otherwise."""
    fields: dict[str, Any] = {
        "tool": tool,
        "arguments": {"payment_id": "pay_1", "amount": 4900},
        "timeout": "30m",
        "reasoning": "Charged twice.",
        "confidence": 0.4,
        "impact": "high",
    }
    fields.update(overrides)
    return Submission(**fields)


def decided_approval(
    *,
    agent: Agent,
    status: str,
    created_at: datetime,
    decided_at: datetime | None = None,
    reviewer: User | None = None,
    note: str = "",
    **fields: object,
) -> ApprovalRequest:
    """A request with a past outcome at exact times, for insight and metrics fixtures."""
    approval = ApprovalRequestFactory(
        agent=agent,
        status=status,
        decided_at=decided_at,
        deadline_at=created_at + timedelta(minutes=30),
        **fields,
    )
    # created_at is auto_now_add: set it after the insert.
    ApprovalRequest.objects.filter(pk=approval.pk).update(created_at=created_at)
    approval.created_at = created_at
    if status != Status.PENDING:
        assert decided_at is not None, "a decided request needs decided_at"
        Decision.objects.create(
            approval=approval, status=status, reviewer=reviewer, note=note, decided_at=decided_at
        )
    return approval


class TeamFactory(ModelFactory[Team]):
    class Meta:
        model = "approvals.Team"
        django_get_or_create = ("name",)
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"team-{n}")

    @factory.post_generation
    def members(self, create: bool, extracted: Iterable[User] | None, **kwargs: object) -> None:
        if create and extracted:
            self.members.add(*extracted)


def reviewer_with_slack(username: str, slack_user_id: str, **preferences: object) -> User:
    user = UserFactory(username=username)
    NotificationPreference.objects.create(user=user, slack_user_id=slack_user_id, **preferences)
    return user


class PolicyRuleFactory(ModelFactory[PolicyRule]):
    class Meta:
        model = PolicyRule

    name = factory.Sequence(lambda n: f"rule-{n}")
    position = factory.Sequence(lambda n: 10 * (n + 1))
    state = RuleState.ACTIVE
    outcome = Outcome.HOLD
