"""The fault suite's view of the console's database, run as a console process of its own.

The suite's cluster runs on a PostgreSQL server the test started (tests/fault_cluster.py), not on
the pytest database, so the test reads and seeds it the way an operator would: a Django process
with the cluster's DATABASE_URL. Prints one JSON document.

    python -m tests.fault_data seed            # reviewer, team, hold-everything rule, tokens
    python -m tests.fault_data report < codes  # what the database holds for these requests
"""

import json
import sys
from typing import Any

import django


def seed() -> dict[str, str]:
    from agents.services import provisioner_token_create
    from approvals.policies.models import Outcome
    from tests.factories import (
        PolicyRuleFactory,
        TeamFactory,
        UserFactory,
        agent_with_token,
        reviewer_api_token,
    )

    # Staff, so the reviewer API shows every request; a member of the team every request is
    # routed to, so each one is emailed to them.
    reviewer = UserFactory(username="rita", is_staff=True, email="rita@example.test")
    team = TeamFactory(name="faults", members=[reviewer])
    PolicyRuleFactory(name="hold everything", outcome=Outcome.HOLD, team=team, position=1)
    _, agent_token = agent_with_token(name="fault-agent")
    return {
        "reviewer_token": reviewer_api_token(reviewer),
        "agent_token": agent_token,
        "provisioner_token": provisioner_token_create(name="faults").plaintext,
    }


def report(codes: list[str]) -> dict[str, Any]:
    """Per request: its status, and how its email notification and AAP webhook stand; then
    whether the audit chain verifies."""
    from agents.models import WebhookNotification
    from approvals.audit import audit_chain_verify
    from approvals.models import ApprovalRequest, Channel, Notification

    requests = {
        str(code): status
        for code, status in ApprovalRequest.objects.filter(code__in=codes).values_list(
            "code", "status"
        )
    }
    emails: dict[str, list[str]] = {}
    for code, status in Notification.objects.filter(
        approval__code__in=codes, channel=Channel.EMAIL
    ).values_list("approval__code", "status"):
        emails.setdefault(str(code), []).append(status)
    webhooks = {
        str(code): {"delivered": delivered is not None, "ended": ended or ""}
        for code, delivered, ended in WebhookNotification.objects.filter(
            approval__code__in=codes
        ).values_list("approval__code", "delivered_at", "ended_reason")
    }
    chain = audit_chain_verify()
    return {
        "requests": requests,
        "emails": emails,
        "webhooks": webhooks,
        "audit": {
            "checked": chain.checked,
            "broken": None if chain.first_break is None else chain.first_break.reason,
        },
    }


def main() -> None:
    django.setup()
    command = sys.argv[1]
    answer = seed() if command == "seed" else report(json.load(sys.stdin))
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
