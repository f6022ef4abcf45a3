"""Print the audit chain's newest record as an anchor, for the operator to keep elsewhere."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from approvals.audit import audit_anchor_current


class Command(BaseCommand):
    help = (
        "Print the newest audit record as SEQ:HASH (and the key that signed it). Keep it outside "
        "the database (a ticket, a log shipped elsewhere, a notebook); later, "
        "`audit_verify --anchor SEQ:HASH` fails if the chain no longer holds that record with "
        "that hash, or is shorter. Run audit_verify first: an anchor vouches for what it sees."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        current = audit_anchor_current()
        if current is None:
            raise CommandError("The audit trail is empty: there is nothing to anchor yet.")
        anchor, key_id = current
        self.stdout.write(str(anchor))
        self.stderr.write(f"record #{anchor.sequence}, signed with key {key_id or '(unkeyed)'}")
