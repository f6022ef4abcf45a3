import zoneinfo
from typing import Any

from django import forms

from approvals.models import NotificationPreference


class ApproveForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.TextInput(
            attrs={"placeholder": "Note for the agent (optional)", "autocomplete": "off"}
        ),
    )
    # The second step of approving a high- or critical-impact request: the tool's name, sent by
    # the confirmation the page shows (approvals.views.approve refuses the approval without it).
    confirmed = forms.CharField(required=False, max_length=200)


class DenyForm(forms.Form):
    reason = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say why: the agent is told the reason."},
    )


class EscalateNextStepForm(forms.Form):
    note = forms.CharField(required=False, max_length=5000)


class NotificationPreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = [
            "email_enabled",
            "slack_enabled",
            "console_enabled",
            "quiet_hours_start",
            "quiet_hours_end",
            "time_zone",
            "email_mode",
            "digest_minutes",
        ]
        widgets = {
            "email_mode": forms.RadioSelect,
            "quiet_hours_start": forms.TimeInput(attrs={"type": "time"}),
            "quiet_hours_end": forms.TimeInput(attrs={"type": "time"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A form posted without them (an older page, a script) keeps what was chosen before.
        self.fields["email_mode"].required = False
        self.fields["digest_minutes"].required = False

    def clean_email_mode(self) -> str:
        return str(self.cleaned_data["email_mode"] or self.instance.email_mode)

    def clean_digest_minutes(self) -> int:
        value = self.cleaned_data["digest_minutes"]
        return int(value if value is not None else self.instance.digest_minutes)

    def clean_time_zone(self) -> str:
        value = self.cleaned_data["time_zone"]
        if value not in zoneinfo.available_timezones():
            raise forms.ValidationError("Not a time zone name, e.g. Europe/Berlin.")
        return str(value)


class SlackLinkStartForm(forms.Form):
    slack_user_id = forms.CharField(
        label="Slack member id", max_length=32, help_text="e.g. U024BE7LH; a code is sent there."
    )


class SlackLinkVerifyForm(forms.Form):
    code = forms.CharField(label="Code from Slack", max_length=20)


class ApproveChangesForm(forms.Form):
    arguments = forms.CharField(
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false", "class": "json-editor"}),
        error_messages={"required": "Give the arguments to run, as a JSON object."},
    )
    note = forms.CharField(required=False, max_length=5000)
    # Set by the confirmation step, after the reviewer has seen the diff.
    confirmed = forms.BooleanField(required=False)


class EscalateForm(forms.Form):
    # The queryset is set per request: every team but the one the request is with.
    team: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None,  # type: ignore[arg-type]
        empty_label="Choose a team",
    )
    note = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say why: the other team reads this first."},
    )

    def __init__(self, *args: object, approval: object = None, **kwargs: object) -> None:
        from approvals.models import Team

        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        teams = Team.objects.all()
        if approval is not None and getattr(approval, "team_id", None) is not None:
            teams = teams.exclude(pk=approval.team_id)  # type: ignore[attr-defined]
        self.fields["team"].queryset = teams  # type: ignore[attr-defined]


class CommentForm(forms.Form):
    note = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Write something first."},
    )
