from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from agents.services import provisioner_token_create


class Command(BaseCommand):
    help = "Create an AAP provisioner token and print it (shown once, stored hashed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: object, name: str, **options: object) -> None:
        try:
            issued = provisioner_token_create(name=name)
        except IntegrityError:
            raise CommandError(f"A provisioner token named {name!r} already exists.") from None
        self.stderr.write(f"Provisioner token {name!r} created. The token, shown only this once:")
        self.stdout.write(issued.plaintext)
