"""Changed arguments are judged by the policy exactly as a new request with them would be.

"Approve with changes" lets a reviewer swap the arguments the agent runs. Without this check a
reviewer could approve what the policy denies outright (delete 50,000 rows where a rule denies
more than 1,000), or what it routes to another team or to more reviewers than the editor (a
payment over 1,000 that needs two approvals from finance). So every path by which changed
arguments can be approved (pages, reviewer API, quorum votes, the AAP suggestion and its
resubmission) asks `change_routing_judge` first and lets them through only when the approvers
satisfy what it answers; approvals.reviews records the change as a proposal otherwise.

The verdict comes from the very function that decides new requests (policy_decide_many), for a
hypothetical request with the same agent, tool, impact, confidence, labels and run, and the
changed arguments.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents.models import Run
from agents.services import run_refusal_why
from approvals.access import reviewer_may_see
from approvals.models import ApprovalRequest
from approvals.policies.evaluation import PolicyQuestion, Verdict, policy_decide_many
from approvals.policies.models import Outcome

# Verdicts where a guardrail, not a rule, asks for a person: the rules would approve the call
# at once, but a throttle (too many automatic approvals) or a budget set to hold wants someone
# to look first. A reviewer approving changed arguments is that someone, so these ask nothing
# beyond the request's own review. (A budget set to deny still denies: that is a DENY verdict.)
_PERSON_SUFFICES = frozenset({"throttle", "budget"})


@dataclass(frozen=True)
class ChangedCall:
    """The fields the policy reads from a submission: the request's own, with new arguments."""

    tool: str
    arguments: dict[str, Any]
    impact: str
    confidence: float | None
    labels: Any
    context: Any


@dataclass(frozen=True)
class ChangeRouting:
    """What the policy asks before changed arguments may be approved.

    `routes` False: the policy approves them at once (or only a guardrail wants a person), so
    the request's own review is enough. True: a new request with them would be held for
    `team_id` with `required_approvals`; those who approve the change must be entitled to
    decide that team's requests, and as many.
    """

    verdict: Verdict
    routes: bool
    team_id: int | None = None
    team_name: str = ""
    required_approvals: int = 1

    @property
    def refused(self) -> bool:
        return self.verdict.outcome == Outcome.DENY

    def refusal_message(self) -> str:
        rule = self.verdict.rule
        who = f"{rule.title}" if rule is not None else f"the {self.verdict.decided_by}"
        return (
            f"Not recorded: the policy denies these arguments ({who} would deny a new request "
            f"with them), so they cannot be approved. {self.verdict.reason}"
        )

    def describe(self) -> str:
        """Where the change must go, in words for reviewers (history, messages)."""
        team = self.team_name or "staff (no team)"
        count = self.required_approvals
        return f"{team}, {count} approval{'s' if count != 1 else ''}"


def change_routing_judge(
    *, approval: ApprovalRequest, arguments: dict[str, Any], now: datetime | None = None
) -> ChangeRouting:
    """The policy's verdict on `approval` as if it had been submitted with `arguments`, now.

    Call inside the transaction that approves (or records) the change, before locking the
    request's row: this locks the run's row and the agent's row exclusively, in the order
    creation and halts take them, and holds them to the commit. So, exactly as for a new
    request:
    - running totals see every approval committed before and none in between; the request
      being changed is still pending, so it is not in the total, and "this call" is the
      changed value (what would run), not the submitted one;
    - throttles count automatic approvals only, which a reviewer's approval is not (it is
      neither counted nor held back by them; see _PERSON_SUFFICES);
    - a halted agent or a closed run denies, a budget set to deny denies.
    Never raises for a policy that cannot be evaluated: that verdict holds, for staff.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("judge changed arguments inside the transaction that approves them")
    now = now or timezone.now()
    run = None
    if approval.run_id is not None:
        run = Run.objects.select_for_update().get(pk=approval.run_id)
    call = ChangedCall(
        tool=approval.tool,
        arguments=arguments,
        impact=approval.impact,
        confidence=approval.confidence,
        labels=approval.labels,
        context=approval.context,
    )
    if run is not None and not run.is_open:
        # As at creation: a closed run takes no new requests whatever the policy says.
        verdict = Verdict(outcome=Outcome.DENY, why=run_refusal_why(run), decided_by="run")
    else:
        question = PolicyQuestion(agent=approval.agent, submission=call, run=run)
        verdict = policy_decide_many([question], now=now)[0]
    if verdict.outcome != Outcome.HOLD or verdict.decided_by in _PERSON_SUFFICES:
        return ChangeRouting(verdict=verdict, routes=False)
    return ChangeRouting(
        verdict=verdict,
        routes=True,
        team_id=verdict.team_id,
        team_name=verdict.rule.team_name if verdict.rule and verdict.team_id else "",
        required_approvals=verdict.required_approvals,
    )


def change_approvers_counted(
    *, approval: ApprovalRequest, routing: ChangeRouting | None, approvers: list[Any]
) -> list[Any]:
    """Those of `approvers` whose approval counts for `approval` as routed now and, for changed
    arguments, for the team the policy routes them to: each must be entitled to decide both
    (staff, or a member of both teams). A team's approval never stands in for another's."""
    team_ids = [approval.team_id]
    if routing is not None and routing.routes:
        team_ids.append(routing.team_id)
    return [
        user
        for user in approvers
        if all(reviewer_may_see(user=user, team_id=team_id) for team_id in team_ids)
    ]


def change_required_approvals(*, approval: ApprovalRequest, routing: ChangeRouting | None) -> int:
    """How many counted approvals the change needs: the request's quorum, or the policy's for
    the changed arguments if that is more. Never fewer than the request asked."""
    if routing is None or not routing.routes:
        return approval.required_approvals
    return max(approval.required_approvals, routing.required_approvals)
