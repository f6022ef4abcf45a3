"""The kill switch in the console: see which agents are halted; halt or resume in one click."""

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from agents.models import Agent
from approvals.agent_text import agent_text_in_quotes
from approvals.policies.forms import HaltForm, ResumeForm
from approvals.policies.halts import NotHalted, agent_halt, agent_resume, run_halt
from approvals.policies.selectors import agent_get, agents_with_halts, run_get
from console.http import AuthenticatedHttpRequest


def _agent_or_404(code: UUID) -> Agent:
    agent = agent_get(code=code)
    if agent is None:
        raise Http404("No such agent.")
    return agent


def _back(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("policies:agents")


@require_GET
@login_required
def agents(request: AuthenticatedHttpRequest) -> HttpResponse:
    rows = [
        (agent, next((h for h in agent.halts.all() if h.is_active), None))
        for agent in agents_with_halts()
    ]
    return render(
        request,
        "approvals/agents.html",
        {
            "rows": rows,
            "can_halt": request.user.has_perm("agents.halt_agent"),
            "halt_form": HaltForm(),
            "resume_form": ResumeForm(),
        },
    )


@require_POST
@login_required
@permission_required("agents.halt_agent", raise_exception=True)
def halt(request: AuthenticatedHttpRequest, code: UUID) -> HttpResponse:
    agent = _agent_or_404(code)
    form = HaltForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    agent_halt(
        agent=agent,
        reason=reason or f"Halted from the console by {request.user.get_username()}.",
        halted_by=request.user,
    )
    # The agent names itself (AAP provisioning): its name quoted, so it never reads as ours.
    named = f"Agent {agent_text_in_quotes(agent.name)}"
    messages.warning(request, f"{named} is halted: pending requests cancelled, new ones denied.")
    return _back(request)


@require_POST
@login_required
@permission_required("agents.halt_agent", raise_exception=True)
def resume(request: AuthenticatedHttpRequest, code: UUID) -> HttpResponse:
    agent = _agent_or_404(code)
    form = ResumeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why you resume the agent: it is recorded with your name.")
        return _back(request)
    try:
        agent_resume(agent=agent, resumed_by=request.user, reason=form.cleaned_data["reason"])
    except NotHalted:
        messages.info(request, f"Agent {agent_text_in_quotes(agent.name)} was not halted.")
    else:
        messages.success(request, f"Agent {agent_text_in_quotes(agent.name)} is resumed.")
    return _back(request)


@require_POST
@login_required
@permission_required("agents.halt_agent", raise_exception=True)
def halt_run(request: AuthenticatedHttpRequest, code: UUID) -> HttpResponse:
    run = run_get(code=code)
    if run is None:
        raise Http404("No such run.")
    form = HaltForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    run = run_halt(run=run, halted_by=request.user, reason=reason)
    messages.warning(request, f"Run {run.name} is {run.status}: its pending requests are denied.")
    return _back(request)
