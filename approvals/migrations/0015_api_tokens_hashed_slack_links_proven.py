"""Two credentials that could be taken over, closed.

Reviewer API tokens: DRF's authtoken stored each key in plaintext. They are now django-rest-knox
tokens, stored as digests. The old keys cannot become knox tokens (knox needs its own format,
and keeping them would keep plaintext keys in the database), so they stop working: scripts get a
401 saying to ask for a new token. The table belongs to rest_framework.authtoken, no longer
installed; its rows are deleted here so no plaintext key outlives the upgrade.

Slack member ids were self-asserted: anyone could put someone else's id on their preferences
and have that person's clicks count as theirs. A link now needs proof (a code sent to the
member by direct message). The links made before could not be told apart from a hijack, so
each becomes an unproven claim: Slack clicks from it decide nothing and no notification goes to
it until the reviewer proves it, which is one click and a code on the preferences page. Trusting
them would have kept exactly the links the attack made.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def delete_plaintext_api_tokens(apps, schema_editor):  # type: ignore[no-untyped-def]
    connection = schema_editor.connection
    if "authtoken_token" in connection.introspection.table_names():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM authtoken_token")


def slack_links_to_unproven_claims(apps, schema_editor):  # type: ignore[no-untyped-def]
    NotificationPreference = apps.get_model("approvals", "NotificationPreference")
    SlackLinkClaim = apps.get_model("approvals", "SlackLinkClaim")
    linked = NotificationPreference.objects.exclude(slack_user_id="")
    SlackLinkClaim.objects.bulk_create(
        SlackLinkClaim(user_id=user_id, slack_user_id=slack_user_id)
        for user_id, slack_user_id in linked.values_list("user_id", "slack_user_id")
    )
    linked.update(slack_user_id="")


def unproven_claims_to_slack_links(apps, schema_editor):  # type: ignore[no-untyped-def]
    NotificationPreference = apps.get_model("approvals", "NotificationPreference")
    SlackLinkClaim = apps.get_model("approvals", "SlackLinkClaim")
    for claim in SlackLinkClaim.objects.filter(code_digest=""):
        if not NotificationPreference.objects.filter(slack_user_id=claim.slack_user_id).exists():
            NotificationPreference.objects.update_or_create(
                user_id=claim.user_id, defaults={"slack_user_id": claim.slack_user_id}
            )


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0014_guardrails_versioned"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="notificationpreference",
            name="slack_user_id",
            field=models.CharField(
                blank=True,
                help_text="Verified Slack member id. Set by the reviewer proving it, or here by an admin.",
                max_length=32,
            ),
        ),
        migrations.CreateModel(
            name="SlackLinkClaim",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("slack_user_id", models.CharField(max_length=32)),
                ("code_digest", models.CharField(blank=True, max_length=64)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="slack_link_claim",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.RunPython(delete_plaintext_api_tokens, migrations.RunPython.noop),
        migrations.RunPython(slack_links_to_unproven_claims, unproven_claims_to_slack_links),
    ]
