"""Who may see and decide which approval requests: the one access rule, used everywhere.

- Staff see and decide every request.
- A reviewer sees and decides the requests routed to a team they belong to.
- A request routed to no team is visible to staff only: nobody was chosen to review it, so it
  must not land in every reviewer's queue by accident (fail closed).
- Anonymous or inactive users see nothing.

Pages, the reviewer API and the websocket consumer all go through these functions; anything a
user may not see answers exactly like something that does not exist (404).
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from agents.models import Run
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
    does not exist for them. Not every request: one the policy decided is routed to no team
    (staff's alone), and would hide from its team's reviewers every run it is part of.

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
