"""Create the demo reviewer and demo agent that `make run` uses, or reuse them."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from agents.models import Agent
from agents.services import agent_create, credential_authenticate, credential_issue

DEMO_REVIEWER = "demo"
DEMO_AGENT = "demo-agent"


def _private_file(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    path.chmod(0o600)


class Command(BaseCommand):
    help = "Create (or reuse) the demo reviewer and demo agent; print how to log in."

    def handle(self, *args: object, **options: object) -> None:
        var = Path(settings.VAR_DIR)
        password_file = var / "demo-reviewer-password"
        credential_file = var / "demo-agent.credential"

        User = get_user_model()
        reviewer = User.objects.filter(username=DEMO_REVIEWER).first()
        if reviewer is None or not password_file.exists():
            password = secrets.token_urlsafe(12)
            reviewer = reviewer or User(username=DEMO_REVIEWER, email="demo@example.test")
            reviewer.is_staff = reviewer.is_superuser = True
            reviewer.set_password(password)
            reviewer.save()
            _private_file(password_file, password)
        password = password_file.read_text().strip()

        agent = Agent.objects.filter(name=DEMO_AGENT).first() or agent_create(
            name=DEMO_AGENT, description="Feeds the console realistic requests in `make run`."
        )
        token = credential_file.read_text().strip() if credential_file.exists() else ""
        if credential_authenticate(token=token) != agent:
            _private_file(credential_file, credential_issue(agent=agent, label="demo").plaintext)

        self.stdout.write(
            self.style.SUCCESS(
                "\n  Demo reviewer ready. Log in at the console with\n"
                f"    username: {DEMO_REVIEWER}\n    password: {password}\n"
                f"  (kept in {password_file};\n"
                f"   the demo agent's credential is in {credential_file})\n"
            )
        )
