"""`python -m console.bench.queue_data`: the queue page and the reviewer API at scale.

Each data size gets its own PostgreSQL database next to the bench database (its name plus
`_queue<version>_<pending>_<decided>`), seeded once with plain SQL (INSERT ... SELECT
generate_series: requests, decisions, events and policy evaluations shaped like the real rows)
and reused while its counts match. For each size a child process measures in process, with
Django's test client (the full middleware stack, no network): server time p50/p95 of the queue
page (a staff reviewer and a team reviewer), of the reviewer API (first page, a filtered page,
a later page, the decided list) and of the history page, and the SQL queries each makes. A
small and a large size side by side show whether the query count grows with the data.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from console.bench import aligned

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres:postgres@127.0.0.1:5432/console_bench"

# (pending, decided) per measured size: a small one and a large one, so query counts compare.
SIZES: dict[str, list[tuple[int, int]]] = {
    "tiny": [(10, 100), (100, 1_000)],
    "default": [(1_000, 10_000), (10_000, 100_000)],
    "full": [(1_000, 10_000), (100_000, 1_000_000)],
}
SAMPLES = {"tiny": 3, "default": 30, "full": 40}

STAFF = "queue-staff"
TEAM_REVIEWER = "queue-team-reviewer"
TEAMS = ["payments", "support", "infra", "growth", "security"]
AGENT_COUNT = 20
TOOLS = [
    "issue_refund", "send_email", "delete_records", "deploy_service", "rotate_keys",
    "update_crm", "charge_card", "create_ticket", "scale_cluster", "grant_access",
    "export_data", "post_message",
]  # fmt: skip
LATER_PAGE = 5  # the API's "later page": this many pages in, following next_cursor


# Part of each database's name: change it when the seeded rows change shape, to seed afresh.
SEED_VERSION = 1


def database_url_for(base_url: str, pending: int, decided: int) -> str:
    prefix, _, name = base_url.rpartition("/")
    name = name.split("?")[0]
    return f"{prefix}/{name}_queue{SEED_VERSION}_{pending}_{decided}"


# --- Seeding (child process, Django set up) ------------------------------------------------


def _seed_people() -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from agents.models import Agent
    from approvals.models import Team
    from approvals.reviewer_tokens import reviewer_token_issue

    users = get_user_model().objects
    staff, _ = users.get_or_create(username=STAFF, defaults={"is_staff": True})
    team_reviewer, _ = users.get_or_create(username=TEAM_REVIEWER)
    teams = [Team.objects.get_or_create(name=name)[0] for name in TEAMS]
    team_reviewer.teams.set(teams[:1])
    deciders = [users.get_or_create(username=f"queue-decider-{i}")[0] for i in range(5)]
    for team in teams:
        team.members.add(*deciders)
    agents = [
        Agent.objects.get_or_create(name=f"queue-agent-{i:02d}")[0] for i in range(AGENT_COUNT)
    ]
    return {
        "staff": staff,
        "team_reviewer": team_reviewer,
        "staff_token": reviewer_token_issue(user=staff).plaintext,
        "team_token": reviewer_token_issue(user=team_reviewer).plaintext,
        "team_ids": [team.pk for team in teams],
        "agent_ids": [agent.pk for agent in agents],
        "decider_ids": [user.pk for user in deciders],
    }


def _counts() -> tuple[int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE status = 'pending'), "
            "count(*) FILTER (WHERE status <> 'pending') FROM approvals_approvalrequest"
        )
        pending, decided = cursor.fetchone()
    return pending, decided


# Row g of the series: decided rows first (the older ids), then pending ones, as in real life.
# Arrays are 1-based in SQL; every choice is a deterministic function of g.
_REQUESTS_SQL = """
INSERT INTO approvals_approvalrequest (
    code, source, idempotency_key, fingerprint, tool, arguments, summary, reasoning, context,
    confidence, impact, timeout, timeout_seconds, required_approvals, hold_reason, status,
    created_at, deadline_at, decided_at, agent_id, team_id, labels, arguments_raw, context_raw,
    server_raw
)
SELECT
    gen_random_uuid(), 'native', 'seed-' || g, md5(g::text) || md5((g + 1)::text),
    (%(tools)s::text[])[1 + h.tool %% cardinality(%(tools)s::text[])],
    jsonb_build_object('customer', 'cust_' || (g %% 5000), 'amount', (g * 37) %% 100000,
                       'reference', 'ref-' || g),
    'Request ' || g || ' for customer cust_' || (g %% 5000),
    'The agent asked because the amount is above its own limit.',
    '{}'::jsonb,
    CASE WHEN g %% 10 = 0 THEN NULL ELSE (h.confidence %% 101) / 100.0 END,
    (ARRAY['low', 'medium', 'medium', 'high', 'high', 'critical'])[1 + h.impact %% 6],
    '24h', 86400, CASE WHEN g %% 20 = 0 THEN 2 ELSE 1 END,
    'Held by rule "review risky calls": impact is high or confidence below 0.8.',
    CASE WHEN g > %(decided)s THEN 'pending'
         ELSE (ARRAY['approved', 'approved', 'approved', 'approved', 'approved', 'approved',
                     'denied', 'denied', 'denied', 'expired'])[1 + h.status %% 10] END,
    created, created + interval '24 hours',
    CASE WHEN g > %(decided)s THEN NULL ELSE created + ((g %% 120) || ' minutes')::interval END,
    (%(agents)s::bigint[])[1 + h.agent %% cardinality(%(agents)s::bigint[])],
    CASE WHEN h.routed %% 10 = 0 THEN NULL
         ELSE (%(teams)s::bigint[])[1 + h.team %% cardinality(%(teams)s::bigint[])] END,
    '[]'::jsonb, '', '', ''
FROM generate_series(1, %(total)s) AS g,
LATERAL (SELECT CASE
    -- decided: spread over the 90 days before the pending ones; pending: the last 24 hours,
    -- so some are due within minutes (urgent) and most later.
    WHEN g <= %(decided)s
        THEN now() - interval '1 day' - (interval '90 days' * (%(decided)s - g) / %(decided)s)
    ELSE now() - (interval '24 hours' * (%(total)s - g) / greatest(%(pending)s, 1))
END AS created) AS times,
-- Independent pseudo-random picks per column, the same on every run.
LATERAL (SELECT abs(hashint4(g)::bigint) AS tool, abs(hashint4(g + 1)::bigint) AS impact,
                abs(hashint4(g + 2)::bigint) AS status, abs(hashint4(g + 3)::bigint) AS agent,
                abs(hashint4(g + 4)::bigint) AS routed, abs(hashint4(g + 5)::bigint) AS team,
                abs(hashint4(g + 6)::bigint) AS confidence) AS h
"""

_DECISIONS_SQL = """
INSERT INTO approvals_decision (status, note, decided_at, expires_at, approval_id, reviewer_id)
SELECT status,
       CASE status WHEN 'expired' THEN 'Nobody decided before the deadline.'
                   WHEN 'denied' THEN 'Not without a ticket.' ELSE '' END,
       decided_at,
       CASE WHEN status = 'approved' THEN decided_at + interval '10 minutes' END,
       id,
       CASE WHEN status = 'expired' THEN NULL
            ELSE (%(deciders)s::int[])[1 + id %% cardinality(%(deciders)s::int[])] END
FROM approvals_approvalrequest WHERE status <> 'pending'
"""

_EVENTS_SQL = """
INSERT INTO approvals_approvalevent (
    kind, from_status, to_status, actor_type, note, created_at, actor_agent_id, actor_user_id,
    approval_id
)
SELECT 'submitted', '', 'pending', 'agent', '', created_at, agent_id, NULL, id
FROM approvals_approvalrequest
UNION ALL
SELECT d.status, 'pending', d.status,
       CASE WHEN d.reviewer_id IS NULL THEN 'system' ELSE 'reviewer' END,
       d.note, d.decided_at, NULL, d.reviewer_id, d.approval_id
FROM approvals_decision AS d
"""

_EVALUATIONS_SQL = """
INSERT INTO approvals_policyevaluation (
    rule_name, outcome, reason, shadow_matches, on_timeout, evaluated_at, approval_id, decided_by
)
SELECT 'review risky calls', 'hold',
       'Rule "review risky calls" matched: impact is high or confidence below 0.8.',
       '[]'::jsonb, 'deny', created_at, id, 'rule'
FROM approvals_approvalrequest
"""

_CLAIMS_SQL = """
INSERT INTO approvals_approvalclaim (approval_id, reviewer_id, claimed_at, expires_at)
SELECT id, %(staff)s, now(), now() + interval '1 hour'
FROM approvals_approvalrequest WHERE status = 'pending' ORDER BY id DESC LIMIT 20
"""


def seed(*, pending: int, decided: int) -> dict[str, Any]:
    """Seed the database to exactly `pending` + `decided` requests, unless it already is."""
    from django.db import connection, transaction

    people = _seed_people()
    tables = [
        "approvals_approvalclaim", "approvals_approvalvote", "approvals_reviewerpresence",
        "approvals_policyevaluation", "approvals_approvalevent", "approvals_decision",
        "approvals_approvalrequest",
    ]  # fmt: skip
    params = {
        "pending": pending, "decided": decided, "total": pending + decided,
        "tools": TOOLS, "agents": people["agent_ids"], "teams": people["team_ids"],
        "deciders": people["decider_ids"], "staff": people["staff"].pk,
    }  # fmt: skip
    started = time.monotonic()
    if _counts() == (pending, decided):
        with connection.cursor() as cursor:
            # Reused: a migration may have rewritten the table since (autovacuum's job, live).
            cursor.execute(f"VACUUM ANALYZE {', '.join(tables)}")
        return {**people, "seeded_s": 0.0}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        for statement in (
            _REQUESTS_SQL,
            _DECISIONS_SQL,
            _EVENTS_SQL,
            _EVALUATIONS_SQL,
            _CLAIMS_SQL,
        ):
            cursor.execute(statement, params)
    with connection.cursor() as cursor:
        # A live database has autovacuum; a fresh bulk load needs statistics and a visibility map.
        cursor.execute(f"VACUUM ANALYZE {', '.join(tables)}")
    return {**people, "seeded_s": time.monotonic() - started}


# --- Measuring (child process) -------------------------------------------------------------


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] * 1000

    return {
        "p50_ms": at(0.5),
        "p95_ms": at(0.95),
        "mean_ms": statistics.fmean(ordered) * 1000,
        "count": float(len(ordered)),
    }


def _measure(call: Any, samples: int) -> dict[str, float]:
    from django.db import connection

    for _ in range(3):  # warm caches, the pool and PostgreSQL's plan cache
        call()
    # Counted by a wrapper, not CaptureQueriesContext: each request start clears the query log.
    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = call()
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.content[:300]!r}")
    timings, cpu = [], []
    for _ in range(samples):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = call()
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    # CPU of this process (the server's share, PostgreSQL's aside): on a machine shared with
    # other work it moves far less than the clock does.
    cpu_figures = _percentiles(cpu)
    return {
        **_percentiles(timings),
        "cpu_p50_ms": cpu_figures["p50_ms"],
        "cpu_p95_ms": cpu_figures["p95_ms"],
        "queries": float(len(queries)),
    }


def measure(*, pending: int, decided: int, samples: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.test import Client
    from django.urls import reverse

    people = seed(pending=pending, decided=decided)
    staff_page, team_page = Client(), Client()
    staff_page.force_login(people["staff"])
    team_page.force_login(people["team_reviewer"])
    staff_api = Client(HTTP_AUTHORIZATION=f"Token {people['staff_token']}")
    queue_url = reverse("approvals:queue")
    api_url = reverse("api-v1:reviewer-request-list")

    def later_page_cursor() -> str | None:
        cursor = None
        for _ in range(LATER_PAGE - 1):
            body = staff_api.get(api_url, {"cursor": cursor} if cursor else {}).json()
            cursor = body.get("next_cursor")
            if not cursor:
                return None
        return cursor

    cases: dict[str, Any] = {
        "queue page, staff": lambda: staff_page.get(queue_url),
        "queue page, team reviewer": lambda: team_page.get(queue_url),
        "queue page, filtered": lambda: staff_page.get(
            queue_url, {"tool": "issue_refund", "impact": "high"}
        ),
        "queue API, first page": lambda: staff_api.get(api_url),
        "queue API, filtered page": lambda: staff_api.get(
            api_url, {"tool": "issue_refund", "impact": "high"}
        ),
    }
    cursor = later_page_cursor()
    if cursor:
        cases[f"queue API, page {LATER_PAGE}"] = lambda: staff_api.get(api_url, {"cursor": cursor})
    cases["queue API, decided"] = lambda: staff_api.get(api_url, {"state": "decided"})
    cases["history page, staff"] = lambda: staff_page.get(reverse("approvals:history"))
    return {
        "pending": pending,
        "decided": decided,
        "seeded_s": round(people["seeded_s"], 1),
        "cases": {name: _measure(call, samples) for name, call in cases.items()},
    }


# --- Orchestration (no Django here: each size runs in its own child process) ---------------


def _prepare_database(database_url: str) -> None:
    from console.bench.__main__ import _ensure_database

    _ensure_database(database_url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=BASE_DIR, env={**os.environ, "DATABASE_URL": database_url}, check=True,
    )  # fmt: skip


def run(size: str, base_url: str | None = None) -> dict[str, Any]:
    """Measure every (pending, decided) size of `size`, each in a child process."""
    base_url = base_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    sizes = []
    for pending, decided in SIZES[size]:
        database_url = database_url_for(base_url, pending, decided)
        _prepare_database(database_url)
        child = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
            [sys.executable, "-m", "console.bench.queue_data", "--child",
             f"{pending},{decided},{SAMPLES[size]}"],
            cwd=BASE_DIR, capture_output=True, check=False,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings",
                 "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"},
        )  # fmt: skip
        if child.returncode != 0:
            sys.stderr.write(child.stderr.decode())
            raise RuntimeError("the queue benchmark child failed")
        sizes.append(json.loads(child.stdout))
    return {"sizes": sizes}


def table(results: dict[str, Any]) -> str:
    """One row per case: p50/p95 and queries at each size, side by side."""
    sizes = results["sizes"]
    header = ["queue and reviewer API"]
    for size in sizes:
        label = f"{size['pending']:,}+{size['decided']:,}"
        header += [f"p50 ms {label}", "p95 ms", "cpu p50", "queries"]
    rows = [header]
    for name in sizes[-1]["cases"]:
        row = [name]
        for size in sizes:
            case = size["cases"].get(name)
            row += (
                [
                    f"{case['p50_ms']:.1f}",
                    f"{case['p95_ms']:.1f}",
                    f"{case['cpu_p50_ms']:.1f}",
                    f"{case['queries']:.0f}",
                ]
                if case
                else ["-", "-", "-", "-"]
            )
        rows.append(row)
    lines = aligned([tuple(row) for row in rows])
    lines.append(
        "(sizes are pending+decided requests; server time in process, no network; cpu: the"
        " measuring process's CPU per call)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--output", type=Path, default=BASE_DIR / "var" / "bench" / "queue.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        pending, decided, samples = (int(part) for part in arguments.child.split(","))
        print(json.dumps(measure(pending=pending, decided=decided, samples=samples)))
        return
    results = run(arguments.size)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(f"(JSON in {arguments.output})")


if __name__ == "__main__":
    main()
