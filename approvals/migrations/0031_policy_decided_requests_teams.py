"""Requests the policy approved or denied at once get the team of the rule that decided them,
as new ones now do at creation (approvals.policies.evaluation.Verdict.team_id): that team's
reviewers see what the policy decided in their place (approvals/access.py). Before, such a
request had no team and was staff's alone.

Only requests with no team whose policy evaluation approved or denied (never one held, which a
person may have moved to another team since), by a rule that still exists and names a team: a
halt's or a closed run's denial names no rule, and stays staff's. The rule's team is its team
now; a rule that moved to another team since it decided gives its old requests to the new one
(which reviews what the rule decides today).

Batched: one batch of evaluations at a time, in id order from where the last one stopped, each
batch committed on its own, so a large table is neither locked whole nor rewritten in one
transaction, and a run cut short resumes where it left off (a request given its team is no
longer picked). No notification, push or audit record: nobody is asked to decide these, and the
audit trail records decisions, which this does not change. Undoing it changes nothing: a team
on a decided request is what the console now writes.
"""

from collections import defaultdict

from django.db import migrations, models, transaction

BATCH = 2000
DECIDED_AT_ONCE = ["approve", "deny"]


def teams_backfilled(apps, schema_editor):
    ApprovalRequest = apps.get_model("approvals", "ApprovalRequest")
    PolicyEvaluation = apps.get_model("approvals", "PolicyEvaluation")
    using = schema_editor.connection.alias
    after = 0
    while True:
        batch = list(
            PolicyEvaluation.objects.using(using)
            .filter(
                pk__gt=after,
                outcome__in=DECIDED_AT_ONCE,
                rule__team__isnull=False,
                approval__team__isnull=True,
            )
            .order_by("pk")
            .values_list("pk", "approval_id", "rule__team_id")[:BATCH]
        )
        if not batch:
            return
        after = batch[-1][0]
        by_team: dict[int, list[int]] = defaultdict(list)
        for _, approval_id, team_id in batch:
            by_team[team_id].append(approval_id)
        with transaction.atomic(using=using):
            for team_id, approval_ids in sorted(by_team.items()):
                # Still without a team: a reviewer's change meanwhile is never overwritten.
                ApprovalRequest.objects.using(using).filter(
                    pk__in=approval_ids, team__isnull=True
                ).update(team_id=team_id)


class Migration(migrations.Migration):
    # Each batch commits on its own (above).
    atomic = False

    dependencies = [
        ("approvals", "0030_audit_unqueried_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="policyrule",
            name="team",
            field=models.ForeignKey(
                blank=True,
                help_text="Held: the team whose reviewers decide. Approved or denied at once: "
                "the team whose reviewers see what the rule decided (nobody is notified). "
                "Empty: staff only.",
                null=True,
                on_delete=models.deletion.PROTECT,
                related_name="+",
                to="approvals.team",
            ),
        ),
        migrations.RunPython(teams_backfilled, migrations.RunPython.noop, elidable=True),
    ]
