"""The decision page's own settings: preset deny reasons per tool, and each reviewer's page
behaviour."""

from django.conf import settings
from django.db import models


class DenyReasonPreset(models.Model):
    """A ready-made reason to deny a tool's requests, offered (editable) in the deny form. The
    text the reviewer sends is what the agent receives; a preset only fills the field."""

    tool_glob = models.CharField(
        max_length=200,
        default="*",
        help_text="The tool name, or a shell-style pattern (refund_*); * offers it for every tool.",
    )
    text = models.TextField(max_length=1000)
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower comes first.")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.tool_glob}: {self.text[:60]}"


class ReviewerPageSettings(models.Model):
    """How the decision page behaves for one reviewer."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviewer_page_settings"
    )
    # After deciding, open the next request of the queue: a reviewer working a queue keeps going.
    open_next_after_decision = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "reviewer page settings"  # not Django's "settingss"

    def __str__(self) -> str:
        return f"page settings of {self.user_id}"
