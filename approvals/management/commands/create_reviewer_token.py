from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals.reviewer_tokens import reviewer_token_issue


class Command(BaseCommand):
    help = "Issue a reviewer API token for a user and print it once (only a digest is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: object, **options: str) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user named {options['username']!r}.")
        if not user.is_active:
            raise CommandError(f"{options['username']!r} is inactive: a token would not work.")
        issued = reviewer_token_issue(user=user)
        self.stderr.write(f"Expires {issued.token.expiry:%Y-%m-%d %H:%M} UTC.")
        self.stdout.write(issued.plaintext)
