from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from agents.services import agent_create_with_credential


class Command(BaseCommand):
    help = "Create an agent and print its API credential (shown once, stored hashed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--description", default="")

    def handle(self, *args: object, name: str, description: str, **options: object) -> None:
        try:
            issued = agent_create_with_credential(name=name, description=description)
        except IntegrityError:
            raise CommandError(f"An agent named {name!r} already exists.") from None
        self.stderr.write(f"Agent {name!r} created. Its credential, shown only this once:")
        self.stdout.write(issued.plaintext)
