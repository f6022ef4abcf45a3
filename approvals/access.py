"""Who may see and decide which approval requests: the one access rule, used everywhere.

- Staff see and decide every request.
- A reviewer sees and decides the requests routed to a team they belong to. A request the
  policy approved or denied at once belongs to its rule's team too (the team it would have been
  held for, approvals.policies.evaluation.Verdict.team_id): that team's reviewers see what the
  policy decided in their place, already decided, and nobody is notified of it.
- A request routed to no team is visible to staff only: nobody was chosen to review it, so it
  must not land in every reviewer's queue by accident (fail closed). So is one decided by a
  halt, a closed run or a rule that names no team.
- Anonymous or inactive users see nothing.
- A run's trace event that names a request (a gated tool call's `approval`: its tool, arguments
  and outcome) goes with that request: whoever may not see the request does not see the event.
  An event that names no request is the run's, seen by whoever sees the run.

Pages, the reviewer API and the websocket consumer all go through these functions; anything a
user may not see answers exactly like something that does not exist (404).
"""

from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from agents.models import Run, TraceEvent
from approvals.exceptions import ApprovalNotVisible
from approvals.models import ApprovalRequest, Team


def _is_reviewer(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def visible_team_ids(*, user: Any) -> set[int] | None:
    """The teams whose requests `user` sees; None means every request (staff)."""
    if not _is_reviewer(user):
        return set()
    if user.is_staff:
        return None
    return set(Team.objects.filter(members=user).values_list("id", flat=True))


def approvals_visible_to(*, user: Any) -> QuerySet[ApprovalRequest]:
    team_ids = visible_team_ids(user=user)
    approvals = ApprovalRequest.objects.all()
    if team_ids is None:
        return approvals
    return approvals.filter(Q(team_id__in=team_ids))


def reviewer_may_see(*, user: Any, team_id: int | None) -> bool:
    """The same rule for one request known only by its team (a websocket event)."""
    team_ids = visible_team_ids(user=user)
    if team_ids is None:
        return True
    return team_id is not None and team_id in team_ids


def check_approval_access(*, approval: ApprovalRequest, user: Any) -> None:
    """reviewer_may_see for one request, raising ApprovalNotVisible (a 404) when the rule says
    no: what every reviewer action calls before it acts."""
    if not reviewer_may_see(user=user, team_id=approval.team_id):
        raise ApprovalNotVisible()


def reviewer_may_see_run(*, user: Any, run: Run) -> bool:
    """Staff see every run; a reviewer a run with at least one request they see, as the run's
    timeline on that request's page shows it (selectors.run_timeline_for_reviewer); otherwise it
    does not exist for them. Not every request: one of another team, or of none (a halt's
    denial, a rule naming no team: staff's alone), would hide the run from its team's reviewers.

    Seeing a run is not seeing all its requests: whatever shows or exports it holds only those
    approvals_visible_to the reader (approvals.run_export does), and counts the others."""
    team_ids = visible_team_ids(user=user)
    if team_ids is None:
        return True
    # approvals_visible_to's rule, with the teams already read.
    return ApprovalRequest.objects.filter(run=run, team_id__in=team_ids).exists()


def reviewer_may_see_by_id(*, user_id: int, team_id: int | None) -> bool:
    """Re-read the user, so a deactivated or removed reviewer stops receiving at once."""
    user = get_user_model().objects.filter(pk=user_id).first()
    return reviewer_may_see(user=user, team_id=team_id)


def _uuid_or_none(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def trace_events_visible(*, run: Run, approvals: QuerySet[ApprovalRequest]) -> QuerySet[TraceEvent]:
    """The run's trace events for a reader who may see `approvals` (approvals_visible_to):
    all of them but those naming a request outside `approvals`. Checks no permission itself.

    Any request the event names counts, not only the run's: an agent may name one of its
    requests from another run, or from none, and the event would describe it all the same.
    An event naming an id no request has describes nothing the reader may not see: it stays."""
    events = TraceEvent.objects.filter(run=run)
    named = (
        events.annotate(named=KeyTextTransform("approval", "data"))
        .filter(named__isnull=False)
        .values_list("named", flat=True)
        .distinct()
    )
    codes = {text: code for text in named if (code := _uuid_or_none(str(text))) is not None}
    if not codes:
        return events
    withheld = set(
        ApprovalRequest.objects.filter(code__in=set(codes.values()))
        .exclude(pk__in=approvals.values("pk"))
        .values_list("code", flat=True)
    )
    if not withheld:
        return events
    # Compared as the text the events hold, so the filter runs in the database whatever the
    # backend stores a UUID as.
    named_withheld = [text for text, code in codes.items() if code in withheld]
    return events.filter(Q(data__approval__isnull=True) | ~Q(data__approval__in=named_withheld))
