"""Moving a pending request to another team: the one way it is done.

A reviewer's escalation, an escalation chain's step and a proposed change that needs another
team all move requests; each writes its own history and audit record (they differ in who and
why), and all of them call this for what a move itself means.
"""

from approvals.events import RequestChanged
from approvals.models import ApprovalClaim, ApprovalRequest
from console.events import emit


def approval_request_reassign(
    *, locked: ApprovalRequest, team_id: int | None, required_approvals: int | None = None
) -> int | None:
    """Hand a pending request, locked by the caller's transaction, to `team_id` (and a new
    quorum, if given). Returns the team it left.

    Claims end: they were "I am on this one" among the old team, whose members may no longer
    see it. After commit the old team's live queue drops the row and the new team's gains it.
    """
    previous_team_id = locked.team_id
    fields: dict[str, object] = {"team_id": team_id}
    if required_approvals is not None:
        fields["required_approvals"] = required_approvals
        locked.required_approvals = required_approvals
    ApprovalRequest.objects.filter(pk=locked.pk).update(**fields)
    locked.team_id = team_id
    ApprovalClaim.objects.filter(approval_id=locked.pk).delete()
    emit(RequestChanged(approval_id=locked.pk, previous_team_id=previous_team_id))
    return previous_team_id
