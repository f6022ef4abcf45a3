import zoneinfo

from django import forms

from approvals.models import NotificationPreference


class ApproveForm(forms.Form):
    note = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )


class DenyForm(forms.Form):
    reason = forms.CharField(
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say why: the agent is told the reason."},
    )


class EscalateForm(forms.Form):
    note = forms.CharField(required=False, max_length=5000)


class NotificationPreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = [
            "email_enabled",
            "slack_enabled",
            "console_enabled",
            "slack_user_id",
            "quiet_hours_start",
            "quiet_hours_end",
            "time_zone",
        ]
        widgets = {
            "quiet_hours_start": forms.TimeInput(attrs={"type": "time"}),
            "quiet_hours_end": forms.TimeInput(attrs={"type": "time"}),
        }

    def clean_time_zone(self) -> str:
        value = self.cleaned_data["time_zone"]
        if value not in zoneinfo.available_timezones():
            raise forms.ValidationError("Not a time zone name, e.g. Europe/Berlin.")
        return str(value)
