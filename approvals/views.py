"""Reviewer web pages: parse, call one service or selector, render.

Pages render named partials of their own template; htmx requests get just the partial. Every
request is fetched through the access rule (approvals/access.py): one a reviewer may not see
answers 404, exactly like one that does not exist.
"""

# long: one view per reviewer action on one page, each a few lines; split by action, the
# shared panel rendering and error mapping would have to be imported back from a sibling.

import difflib
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from agents.humanlayer.selectors import humanlayer_call_without_arguments
from approvals.agent_text import agent_json_visible
from approvals.decision_context import (
    approval_key_amount,
    approval_outcomes,
    argument_fields,
    confirmation_unusual_characters,
    deny_reason_presets,
    queue_neighbours,
    reviewer_opens_next,
    similar_decisions_for_reviewer,
)
from approvals.escalations import approval_request_escalate_next_step, escalation_next_step
from approvals.exceptions import (
    ApprovalNotVisible,
    ReviewRejected,
    TransitionConflict,
)
from approvals.forms import (
    AnswerForm,
    ApproveChangesForm,
    ApproveForm,
    CommentForm,
    DenyForm,
    EscalateForm,
    EscalateNextStepForm,
)
from approvals.models import ApprovalRequest, Kind, Status
from approvals.presentation import arguments_folded, pretty_json, window_in_words
from approvals.reviewer_settings import reviewer_page_settings_save
from approvals.reviews import (
    approval_arguments_parse,
    approval_claim_release,
    approval_claim_take,
    check_approval_request_answer,
    check_approval_request_approve,
    check_approval_request_comment,
    check_approval_request_deny,
    check_approval_request_escalate,
    reviewer_operates_agent,
)
from approvals.selectors import (
    InvalidCursor,
    QueueFilters,
    approval_get_for_reviewer,
    approval_track_record,
    approvals_facet_counts,
    approvals_history_page,
    approvals_pending_total,
    approvals_queue_page,
    run_timeline_for_reviewer,
)
from approvals.services import (
    CONFIRMATION_REQUIRED,
    CONFIRMATION_WORD,
    approval_confirmation_asked,
    approval_confirmation_typed,
    decision_page_view_record,
)
from console import exact_json
from console.errors import DomainError
from console.http import AuthenticatedHttpRequest


class HtmxHttpRequest(AuthenticatedHttpRequest):
    """Typing aid: the reviewer pages are behind @login_required, and django-htmx's middleware
    sets `request.htmx`."""

    htmx: HtmxDetails


# Rows per page of the queue and the history: a page renders in the same time however many
# requests wait; the rest are a "next" link (a cursor) away.
LIST_PAGE_ROWS = 50


def _list_context(request: HtmxHttpRequest, *, pending: bool) -> dict[str, Any]:
    filters = QueueFilters.from_query(request.GET)
    page_of = approvals_queue_page if pending else approvals_history_page
    try:
        page = page_of(
            user=request.user,
            filters=filters,
            limit=LIST_PAGE_ROWS,
            cursor=request.GET.get("cursor") or None,
        )
    except InvalidCursor:  # a mangled or foreign link: start from the top
        page = page_of(user=request.user, filters=filters, limit=LIST_PAGE_ROWS)
    top = request.GET.copy()
    for param in ("cursor", "fragment"):
        top.pop(param, None)
    following = top.copy()
    if page.next_cursor:
        following["cursor"] = page.next_cursor
    counts = approvals_facet_counts(user=request.user, filters=filters, pending=pending)
    due_soon_before = timezone.now() + timedelta(seconds=settings.APPROVAL_URGENT_SECONDS)
    return {
        "rows": page.rows,
        "total": approvals_pending_total(user=request.user, filters=filters, counts=counts)
        if pending
        else len(page.rows),
        "due_soon": pending and any(row.deadline_at <= due_soon_before for row in page.rows),
        "urgent_window": window_in_words(settings.APPROVAL_URGENT_SECONDS),
        "due_soon_before": due_soon_before,
        "top_query": top.urlencode(),
        "next_query": following.urlencode() if page.next_cursor else "",
        "paged": bool(request.GET.get("cursor")),
        "filters": filters,
        "counts": counts,
        "query": request.GET.urlencode(),
        "urgent_seconds": settings.APPROVAL_URGENT_SECONDS,
    }


@require_GET
@login_required
def queue(request: HtmxHttpRequest) -> HttpResponse:
    context = _list_context(request, pending=True)
    fragment = request.GET.get("fragment") if request.htmx else None
    if fragment == "rows":
        return render(request, "approvals/queue.html#queue-refresh", context)
    if fragment == "counts":
        return render(request, "approvals/queue.html#counts-refresh", context)
    return render(request, "approvals/queue.html", context)


@require_GET
@login_required
def history(request: HtmxHttpRequest) -> HttpResponse:
    context = _list_context(request, pending=False)
    if request.htmx and request.GET.get("fragment") == "rows":
        return render(request, "approvals/history.html#history-rows", context)
    return render(request, "approvals/history.html", context)


def _domain_errors_as_panel(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The pages' one mapping of domain errors: the decision panel again, re-read so it shows
    what is true now, with the error's message and under its status (409 when someone else got
    there first). A request the reviewer could see when the view read it, but not when the action
    ran (removed from the team, or escalated away meanwhile): 404, as if never seen."""

    @wraps(view)
    def wrapped(request: HtmxHttpRequest, code: UUID, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, code, *args, **kwargs)
        except ApprovalNotVisible:
            raise Http404("No such approval request.") from None
        except DomainError as error:
            return _panel(request, code, status=_page_status(error), conflict_message=_said(error))

    return wrapped


def _page_status(error: DomainError) -> int:
    # A refused review has always answered 400 on a page, the form shown again; the reviewer
    # API's 403 for the agent's own operator is that API's contract.
    if isinstance(error, ReviewRejected) and error.http_status == 403:
        return 400
    return error.http_status


def _said(error: DomainError) -> str:
    if isinstance(error, TransitionConflict):
        return (
            f"Not recorded: someone else got there first. This request is {error.current_status}."
        )
    return error.message


def _get_or_404(request: AuthenticatedHttpRequest, code: UUID) -> ApprovalRequest:
    approval = approval_get_for_reviewer(user=request.user, code=code)
    if approval is None:
        raise Http404("No such approval request.")
    return approval


def _detail_context(
    request: AuthenticatedHttpRequest, approval: ApprovalRequest, **extra: Any
) -> dict[str, Any]:
    user_voted = any(vote.reviewer_id == request.user.pk for vote in approval.votes.all())
    return {
        "approval": approval,
        # AAP requests keep the exact text: the reviewer sees every digit the agent will run.
        "arguments_pretty": exact_json.pretty(approval.arguments_raw)
        if approval.arguments_raw
        else pretty_json(approval.arguments),
        "arguments_folded": arguments_folded(
            exact_json.loads(approval.arguments_raw), render=exact_json.pretty_value
        )
        if approval.arguments_raw
        else arguments_folded(approval.arguments),
        "context_pretty": exact_json.pretty(approval.context_raw)
        if approval.context_raw
        else pretty_json(approval.context),
        "approve_form": extra.pop("approve_form", None) or ApproveForm(),
        "changes_form": extra.pop("changes_form", None)
        or ApproveChangesForm(
            initial={"arguments": agent_json_visible(pretty_json(approval.arguments))}
        ),
        "deny_form": extra.pop("deny_form", None) or DenyForm(),
        "answer_form": extra.pop("answer_form", None)
        or (
            AnswerForm(schema=approval.answer_schema_in_order)
            if approval.kind == Kind.QUESTION
            else None
        ),
        "escalate_form": extra.pop("escalate_form", None) or EscalateForm(approval=approval),
        "comment_form": extra.pop("comment_form", None) or CommentForm(),
        "next_escalation_step": escalation_next_step(approval=approval)
        if approval.status == Status.PENDING
        else None,
        "user_voted": user_voted,
        "humanlayer_without_arguments": humanlayer_call_without_arguments(approval),
        # Only hides the controls: check_approval_request_approve enforces the rule.
        "operates_agent": reviewer_operates_agent(approval=approval, reviewer=request.user),
        "heartbeat_seconds": settings.APPROVAL_PRESENCE_HEARTBEAT_SECONDS,
        "claimed_by_me": approval.live_claim is not None  # type: ignore[attr-defined]
        and approval.live_claim.reviewer_id == request.user.pk,  # type: ignore[attr-defined]
        "needs_confirmation": approval.needs_confirmation,
        # What the reviewer types to confirm: the tool's name as shown, or a fixed word where
        # that name shows as nothing (approvals.services.confirmation).
        "confirm_asked": approval_confirmation_asked(approval),
        "confirm_unusual": confirmation_unusual_characters(approval),
        "key_amount": approval_key_amount(approval),
        "deny_presets": deny_reason_presets(approval),
        "argument_fields": argument_fields(approval),
        **extra,
    }


@require_GET
@login_required
def detail(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    approval = _get_or_404(request, code)
    decision_page_view_record(approval=approval, reviewer=request.user)
    context = _detail_context(request, approval)
    context["track_record"] = approval_track_record(user=request.user, approval=approval)
    context["run_timeline"] = run_timeline_for_reviewer(approval=approval, user=request.user)
    context.update(_page_context(request, approval))
    return render(request, "approvals/detail.html", context)


# Reasoning up to this long is shown open; longer, the reviewer unfolds it.
REASONING_OPEN_CHARS = 400


def _page_context(request: HtmxHttpRequest, approval: ApprovalRequest) -> dict[str, Any]:
    """What only the whole page shows (not the decision panel): context beside the decision."""
    return {
        "similar": similar_decisions_for_reviewer(user=request.user, approval=approval),
        "neighbours": queue_neighbours(user=request.user, approval=approval),
        "outcomes": approval_outcomes(approval),
        "opens_next": reviewer_opens_next(request.user),
        "reasoning_short": len(approval.reasoning) <= REASONING_OPEN_CHARS
        and approval.reasoning.count("\n") < 6,
    }


def _panel(
    request: HtmxHttpRequest, code: UUID, *, status: int = 200, step: bool = False, **extra: Any
) -> HttpResponse:
    """The decision panel, re-read after the action so it shows what is true now.

    `step`: the answer is a step that asks for more (the typed confirmation, the diff of
    changed arguments), not what an action did: without htmx it is rendered in the page, never
    redirected away."""
    approval = _get_or_404(request, code)
    context = _detail_context(request, approval, **extra)
    if request.htmx:
        return render(request, "approvals/detail.html#decision-panel", context, status=status)
    if status == 200 and not step:
        return redirect("approvals:detail", code=approval.code)
    context["track_record"] = approval_track_record(user=request.user, approval=approval)
    context["run_timeline"] = run_timeline_for_reviewer(approval=approval, user=request.user)
    context.update(_page_context(request, approval))
    return render(request, "approvals/detail.html", context, status=status)


def _approve(
    request: HtmxHttpRequest,
    code: UUID,
    *,
    note: str,
    arguments: dict[str, Any] | None,
    confirmed: str | None,
) -> HttpResponse:
    approval = _get_or_404(request, code)
    outcome = check_approval_request_approve(
        approval=approval,
        reviewer=request.user,
        note=note,
        arguments=arguments,
        confirmed=confirmed,
    )
    if outcome.decided:
        return _panel(request, code)
    if outcome.proposal is not None:
        team = outcome.approval.team.name if outcome.approval.team else "staff"
        message = (
            f"Not approved yet: the policy holds these arguments for {outcome.proposal.describe()}"
            f". Your approval of them is recorded as a proposal; the request is now with {team} "
            f"({outcome.votes} of {outcome.required} approvals that count there)."
        )
        if approval_get_for_reviewer(user=request.user, code=code) is None:
            # Handed to a team this reviewer is not in: the request has left their view.
            if not request.htmx:
                return redirect("approvals:queue")
            context = {"approval": outcome.approval, "away_message": message}
            return render(request, "approvals/detail.html#escalated-away", context)
        return _panel(request, code, info_message=message)
    message = (
        f"Your approval is recorded ({outcome.votes} of {outcome.required}). "
        "It waits for another reviewer."
    )
    return _panel(request, code, info_message=message)


@require_POST
@login_required
@_domain_errors_as_panel
def approve(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    form = ApproveForm(request.POST)
    if not form.is_valid():
        return _panel(request, code, status=400, approve_form=form)
    typed = form.cleaned_data["confirmed"]
    approval = _get_or_404(request, code)
    try:
        # The confirm step sends the tool's name as the reviewer typed it; the service refuses a
        # high- or critical-impact approval without it (approvals.services.confirmation), here
        # as on every surface.
        return _approve(
            request,
            code,
            note=form.cleaned_data["note"],
            arguments=None,
            confirmed=approval_confirmation_typed(approval=approval, typed=typed),
        )
    except ReviewRejected as rejected:
        if rejected.code != CONFIRMATION_REQUIRED:
            raise
        refused = rejected
    # Nothing was recorded: the page asks for the second, deliberate step (a stray Enter or a
    # script never approves one), or says what was wrong with the name typed there.
    approval = _get_or_404(request, code)
    status, words = _confirmation_asked(approval, refused, typed, form.cleaned_data["confirm_step"])
    return _panel(
        request,
        code,
        status=status,
        step=True,
        approve_form=form,
        confirm_approve=True,
        **words,
    )


def _confirmation_asked(
    approval: ApprovalRequest, refused: ReviewRejected, typed: str, step: bool
) -> tuple[int, dict[str, str]]:
    """The status and the page's words for an approval refused for want of its confirmation.

    The first Approve of a high- or critical-impact request is answered 200 with the step that
    asks for it: a question, not an error (the service refused it all the same, nothing was
    recorded). An answer to that step with the wrong text is 400, saying what was wrong."""
    if not approval.needs_confirmation:
        # A confirmation naming another tool, from no page of ours.
        return 400, {"conflict_message": refused.message, "confirm_typed": typed}
    if not step and not typed.strip():
        return 200, {}
    asked = approval_confirmation_asked(approval)
    what = "the tool's name" if asked.names_tool else f"the word {CONFIRMATION_WORD}"
    if not typed.strip():
        problem = f"You typed nothing: type {what} to confirm."
    elif asked.names_tool:
        problem = (
            "What you typed is not the tool's name. Type it exactly as shown, letter case "
            "included, or copy it."
        )
    else:
        problem = f"What you typed is not the word {CONFIRMATION_WORD}. Type it as shown."
    return 400, {"confirm_error": f"Not approved. {problem}", "confirm_typed": typed}


@require_POST
@login_required
@_domain_errors_as_panel
def approve_changes(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    """Approve with changed arguments, in two steps: see the diff, then confirm it."""
    approval = _get_or_404(request, code)
    form = ApproveChangesForm(request.POST)
    if not form.is_valid():
        return _panel(request, code, status=400, changes_form=form, show_editor=True)
    try:
        arguments = approval_arguments_parse(approval=approval, text=form.cleaned_data["arguments"])
    except ReviewRejected as error:
        form.add_error("arguments", str(error))
        return _panel(request, code, status=400, changes_form=form, show_editor=True)
    if arguments == approval.arguments:
        form.add_error("arguments", "These are the submitted arguments: use Approve instead.")
        return _panel(request, code, status=400, changes_form=form, show_editor=True)
    note = form.cleaned_data["note"]
    typed, step = form.cleaned_data["confirmed"], form.cleaned_data["confirm_step"]
    if not typed and not step:
        return _changes_diff_step(request, code, approval=approval, arguments=arguments, note=note)
    try:
        # The diff step sends the tool's name (typed by the reviewer at high and critical
        # impact): it is also the confirmation the service asks of every approval
        # (approvals.services.confirmation).
        confirmed = approval_confirmation_typed(approval=approval, typed=typed)
        return _approve(request, code, note=note, arguments=arguments, confirmed=confirmed)
    except ReviewRejected as rejected:
        if rejected.code != CONFIRMATION_REQUIRED:
            raise
        refused = rejected
    status, words = _confirmation_asked(approval, refused, typed, step)
    return _changes_diff_step(
        request, code, approval=approval, arguments=arguments, note=note, status=status, **words
    )


def _changes_diff_step(
    request: HtmxHttpRequest,
    code: UUID,
    *,
    approval: ApprovalRequest,
    arguments: dict[str, Any],
    note: str,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    """Approve with changes, its second step: the diff, and one button that confirms it."""
    diff = difflib.unified_diff(
        pretty_json(approval.arguments).splitlines(),
        pretty_json(arguments).splitlines(),
        fromfile="submitted",
        tofile="you approve",
        lineterm="",
    )
    confirm = ApproveChangesForm(initial={"arguments": pretty_json(arguments), "note": note})
    return _panel(
        request,
        code,
        status=status,
        step=True,
        changes_form=confirm,
        arguments_diff=list(diff),
        **extra,
    )


@require_POST
@login_required
@_domain_errors_as_panel
def answer(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    """A reviewer answers a question through the form its answer schema generated."""
    approval = _get_or_404(request, code)
    form = AnswerForm(request.POST, schema=approval.answer_schema_in_order)
    if not form.is_valid():
        return _panel(request, code, status=400, answer_form=form)
    try:
        check_approval_request_answer(
            approval=approval,
            reviewer=request.user,
            answer=form.answer(),
            note=form.cleaned_data["note"],
        )
    except ReviewRejected as rejected:
        if rejected.param != "answer":
            raise
        form.add_answer_error(rejected.message)
        return _panel(request, code, status=400, answer_form=form)
    return _panel(request, code)


@require_POST
@login_required
@_domain_errors_as_panel
def deny(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    approval = _get_or_404(request, code)
    form = DenyForm(request.POST)
    if not form.is_valid():
        return _panel(request, code, status=400, deny_form=form, show_deny=True)
    check_approval_request_deny(
        approval=approval, reviewer=request.user, reason=form.cleaned_data["reason"]
    )
    return _panel(request, code)


@require_POST
@login_required
@_domain_errors_as_panel
def escalate(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    approval = _get_or_404(request, code)
    form = EscalateForm(request.POST, approval=approval)
    if not form.is_valid():
        return _panel(request, code, status=400, escalate_form=form, show_escalate=True)
    approval = check_approval_request_escalate(
        approval=approval,
        reviewer=request.user,
        team=form.cleaned_data["team"],
        note=form.cleaned_data["note"],
    )
    if approval_get_for_reviewer(user=request.user, code=code) is None:
        # Handed to a team this reviewer is not in: the request has left their view.
        if not request.htmx:
            return redirect("approvals:queue")
        return render(request, "approvals/detail.html#escalated-away", {"approval": approval})
    return _panel(request, code, info_message=f"Escalated to {approval.team}.")


@require_POST
@login_required
@_domain_errors_as_panel
def escalate_next_step(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    """Escalate by hand along the request's chain: its next step fires now."""
    approval = _get_or_404(request, code)
    form = EscalateNextStepForm(request.POST)
    if not form.is_valid():
        return _panel(
            request, code, status=400, conflict_message="A note is at most 5000 characters."
        )
    firing = approval_request_escalate_next_step(
        approval=approval, actor=request.user, note=form.cleaned_data["note"]
    )
    if approval_get_for_reviewer(user=request.user, code=code) is None:
        # The step handed the request to a team this reviewer is not in.
        if not request.htmx:
            return redirect("approvals:queue")
        approval.refresh_from_db(fields=["team"])
        return render(request, "approvals/detail.html#escalated-away", {"approval": approval})
    return _panel(
        request, code, info_message=f"Escalated: step {firing.step.position} of the chain fired."
    )


@require_POST
@login_required
@_domain_errors_as_panel
def comment(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    approval = _get_or_404(request, code)
    form = CommentForm(request.POST)
    if form.is_valid():
        try:
            check_approval_request_comment(
                approval=approval, reviewer=request.user, note=form.cleaned_data["note"]
            )
        except ReviewRejected as error:
            form.add_error("note", str(error))
    status = 200 if form.is_valid() else 400
    if not request.htmx and status == 200:
        return redirect("approvals:detail", code=approval.code)
    context = {
        "approval": _get_or_404(request, code),
        "comment_form": CommentForm() if status == 200 else form,
    }
    return render(request, "approvals/detail.html#history", context, status=status)


@require_POST
@login_required
@_domain_errors_as_panel
def claim(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    approval = _get_or_404(request, code)
    approval_claim_take(
        approval=approval, reviewer=request.user, take_over=request.POST.get("take_over") == "1"
    )
    return _panel(request, code)


@require_POST
@login_required
def release(request: HtmxHttpRequest, code: UUID) -> HttpResponse:
    approval = _get_or_404(request, code)
    approval_claim_release(approval=approval, reviewer=request.user)
    return _panel(request, code)


@require_POST
@login_required
def page_settings(request: HtmxHttpRequest) -> HttpResponse:
    """The reviewer's decision-page settings: whether the next request opens after a decision."""
    reviewer_page_settings_save(
        user=request.user, open_next_after_decision=request.POST.get("open_next") == "on"
    )
    if request.htmx:
        return HttpResponse(status=204)
    back = request.POST.get("next", "")
    if back.startswith("/") and not back.startswith("//"):
        return redirect(back)
    return redirect("approvals:queue")
