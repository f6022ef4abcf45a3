"""Create the demo reviewer, agent, team, escalation chain and policy rules that `make run` uses,
or reuse them. Idempotent: what exists is left as it is, so edits made in the admin survive a
restart of `make run`."""

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from django.db import transaction

from agents.models import Agent
from agents.services import agent_create, credential_authenticate, credential_issue
from approvals.models import EscalationChain, EscalationStep, Impact, Team
from approvals.policies.models import (
    Operator,
    Outcome,
    PolicyCondition,
    PolicyRule,
    RuleState,
)

DEMO_REVIEWER = "demo"
DEMO_AGENT = "demo-agent"
DEMO_TEAM = "demo-team"
DEMO_CHAIN = "demo-escalation"


def _private_file(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(0o600)


class Command(BaseCommand):
    help = (
        "Create (or reuse) the demo reviewer, agent, team, escalation chain and policy rules; "
        "print how to log in."
    )

    def handle(self, *args: object, **options: object) -> None:
        var = Path(settings.VAR_DIR)
        password_file = var / "demo-reviewer-password"
        credential_file = var / "demo-agent.credential"

        UserModel = get_user_model()
        reviewer = UserModel.objects.filter(username=DEMO_REVIEWER).first()
        if reviewer is None or not password_file.exists():
            password = secrets.token_urlsafe(12)
            reviewer = reviewer or UserModel(username=DEMO_REVIEWER, email="demo@example.test")
            reviewer.is_staff = reviewer.is_superuser = True
            reviewer.set_password(password)
            reviewer.save()
            _private_file(password_file, password)
        password = password_file.read_text().strip()

        agent = Agent.objects.filter(name=DEMO_AGENT).first() or agent_create(
            name=DEMO_AGENT, description="Feeds the console realistic requests in `make run`."
        )
        token = credential_file.read_text().strip() if credential_file.exists() else ""
        if credential_authenticate(token=token) != agent:
            _private_file(credential_file, credential_issue(agent=agent, label="demo").plaintext)

        with transaction.atomic():
            team = _demo_team(reviewer)
            chain = _demo_chain(team=team, reviewer=reviewer)
            _demo_rules(team=team, chain=chain)

        self.stdout.write(
            self.style.SUCCESS(
                "\n  Demo reviewer ready. Log in at the console with\n"
                f"    username: {DEMO_REVIEWER}\n    password: {password}\n"
                f"  (kept in {password_file};\n"
                f"   the demo agent's credential is in {credential_file})\n"
                f"  Requests the demo policy holds go to team {DEMO_TEAM!r} and escalate along "
                f"{DEMO_CHAIN!r};\n  see and edit the rules at /admin/approvals/policyrule/.\n"
            )
        )


def _demo_team(reviewer: User) -> Team:
    team, _ = Team.objects.get_or_create(name=DEMO_TEAM)
    team.members.add(reviewer)
    return team


def _demo_chain(*, team: Team, reviewer: User) -> EscalationChain:
    chain, created = EscalationChain.objects.get_or_create(
        name=DEMO_CHAIN,
        defaults={
            "description": "Demo: the team after a minute, then the demo reviewer in person."
        },
    )
    if created:
        # Slack stays off: the demo has no workspace, and every attempt would fail.
        EscalationStep.objects.create(
            chain=chain, position=1, after_minutes=1, notify_team=team, notify_slack=False
        )
        EscalationStep.objects.create(
            chain=chain, position=2, after_minutes=3, notify_user=reviewer, notify_slack=False
        )
    return chain


def _demo_rules(*, team: Team, chain: EscalationChain) -> None:
    """The demo policy, tried in this order (the first match decides):

    emails are approved at once only when low-impact and the agent is at least 90% sure; deleting
    more than 1000 rows is denied; high-impact refunds and everything else wait for the demo team.
    """
    held_for_demo_team: dict[str, Any] = {
        "outcome": Outcome.HOLD,
        "team": team,
        "required_approvals": 1,
        "escalation_chain": chain,
    }
    _rule(
        name="Demo: hold emails the agent is unsure of",
        position=10,
        tool_glob="send_email",
        confidence_below=0.9,
        reason="The agent is less than 90% sure of this email.",
        **held_for_demo_team,
    )
    _rule(
        name="Demo: hold emails above low impact",
        position=20,
        tool_glob="send_email",
        impact_at_least=Impact.MEDIUM,
        reason="Only low-impact emails go out without a person.",
        **held_for_demo_team,
    )
    _rule(
        name="Demo: auto-approve confident low-impact emails",
        position=30,
        tool_glob="send_email",
        outcome=Outcome.APPROVE,
        reason="A low-impact email the agent is at least 90% sure of.",
    )
    _rule(
        name="Demo: deny deleting more than 1000 rows",
        position=40,
        tool_glob="delete_records",
        outcome=Outcome.DENY,
        reason="Deleting more than 1000 rows at once is not allowed: split the job.",
        conditions=[("expected_rows", Operator.GT, 1000)],
    )
    _rule(
        name="Demo: hold high-impact refunds for the demo team",
        position=50,
        tool_glob="issue_refund",
        impact_at_least=Impact.HIGH,
        reason="A high-impact refund needs a person.",
        **held_for_demo_team,
    )
    _rule(
        name="Demo: hold everything else",
        position=1000,
        reason="No demo rule decides this: held for review.",
        **held_for_demo_team,
    )


def _rule(
    *, name: str, conditions: list[tuple[str, str, object]] | None = None, **fields: Any
) -> None:
    rule, created = PolicyRule.objects.get_or_create(
        name=name, defaults={"state": RuleState.ACTIVE, **fields}
    )
    if created:
        for path, operator, value in conditions or []:
            PolicyCondition.objects.create(rule=rule, path=path, operator=operator, value=value)
