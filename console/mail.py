"""The embedded mail backend: says in the log that a message was not sent, never what it said.

Without a mail server (EMAIL_HOST unset) Django's console backend printed every message whole,
password-reset links included, so anyone who could read the logs could take over an account.
This backend logs the recipients and the subject only. Notifications still reach reviewers in
the console (and Slack); mail needs a relay.
"""

import logging
from collections.abc import Sequence

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger("console.mail")


class LogOnlyEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            logger.info(
                "mail not sent (no mail server: set EMAIL_HOST): to %s, subject %r",
                ", ".join(message.recipients()),
                message.subject,
            )
        # Counted as handled, as the console backend did: the embedded setup has no relay to
        # retry against, and the outbox would otherwise retry every notification for nothing.
        return len(email_messages)
