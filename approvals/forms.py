import json
import zoneinfo
from typing import Any

from django import forms

from approvals.models import NotificationPreference

# A typed confirmation this long is still read, and refused if wrong: a tool's name is at most 200
# characters, but shown with its invisible characters as ⟨U+XXXX⟩ it can be longer.
CONFIRMED_MAX_CHARS = 2000


class ApproveForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.TextInput(
            attrs={"placeholder": "Note for the agent (optional)", "autocomplete": "off"}
        ),
    )
    # The second step of approving a high- or critical-impact request: the tool's name as the
    # reviewer typed it (approvals.services.confirmation refuses the approval without it). Not
    # stripped here: approvals.services.approval_confirmation_typed reads it, whitespace aside.
    confirmed = forms.CharField(required=False, max_length=CONFIRMED_MAX_CHARS, strip=False)
    # Sent by that step's form: a name typed there, even an empty one, is an answer to it.
    confirm_step = forms.BooleanField(required=False)


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
            "notify_on_failure",
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
    # Set by the confirmation step, after the reviewer has seen the diff: the tool's name (typed
    # by the reviewer at high and critical impact), which is also the confirmation such an
    # approval needs (approvals.services.confirmation).
    confirmed = forms.CharField(required=False, max_length=CONFIRMED_MAX_CHARS, strip=False)
    confirm_step = forms.BooleanField(required=False)


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


class AnswerForm(forms.Form):
    """A question's answer, one field per property of its answer schema.

    Object schemas with properties get a field each: strings (a select when the property has
    an `enum`), integers, numbers, booleans; anything else is typed as JSON. Any other schema
    is one raw JSON field. The form only turns the reviewer's input into JSON: whether the
    answer fits the schema is checked by approvals.reviews.check_approval_request_answer.
    """

    RAW = "answer_json"

    note = forms.CharField(required=False, max_length=5000)

    def __init__(self, *args: Any, schema: dict[str, Any] | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = schema or {}
        properties = schema.get("properties")
        self.properties: dict[str, str] = {}  # form field name -> property name
        is_object = schema.get("type", "object") == "object"
        if is_object and isinstance(properties, dict) and properties:
            required = set(schema.get("required") or [])
            for index, (name, spec) in enumerate(properties.items()):
                field_name = f"answer_{index}"
                self.properties[field_name] = name
                self.fields[field_name] = _answer_field(
                    name, spec if isinstance(spec, dict) else {}, required=name in required
                )
        else:
            self.fields[self.RAW] = _JSONValueField(
                label="Answer (JSON)",
                max_length=200_000,
                widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
                error_messages={"required": "Give the answer, as JSON."},
            )

    def answer_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name != "note"]

    def answer(self) -> Any:
        """The answer as JSON, from cleaned data (call after is_valid)."""
        if not self.properties:
            return self.cleaned_data[self.RAW]
        answer: dict[str, Any] = {}
        for field_name, name in self.properties.items():
            value = self.cleaned_data.get(field_name)
            if value is None or value == "":
                continue  # left empty: absent (the schema says whether it may be)
            answer[name] = value
        return answer

    def add_answer_error(self, message: str) -> None:
        """Pin the schema's complaint on the field it names ("$.region: ..."), else on the form."""
        for field_name, name in self.properties.items():
            if f"$.{name}:" in message or f"'{name}' is a required" in message:
                self.add_error(field_name, message)
                return
        self.add_error(None, message)


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise forms.ValidationError(f"Not valid JSON: {error.msg}.") from None


def _answer_field(name: str, spec: dict[str, Any], *, required: bool) -> forms.Field:
    label = spec.get("title") or name
    help_text = spec.get("description") or ""
    common: dict[str, Any] = {"label": label, "help_text": help_text, "required": required}
    kind = spec.get("type")
    if isinstance(spec.get("enum"), list) and all(
        isinstance(choice, str | int | float | bool) for choice in spec["enum"]
    ):
        choices = [(json.dumps(choice), str(choice)) for choice in spec["enum"]]
        return forms.TypedChoiceField(
            choices=[("", "Choose…"), *choices],
            coerce=json.loads,
            empty_value=None,
            **common,
        )
    if kind == "string":
        return forms.CharField(max_length=20_000, **common)
    if kind == "integer":
        return forms.IntegerField(**common)
    if kind == "number":
        return forms.FloatField(**common)
    if kind == "boolean":
        return forms.TypedChoiceField(
            choices=[("", "Choose…"), ("true", "Yes"), ("false", "No")],
            coerce=lambda value: value == "true",
            empty_value=None,
            **common,
        )
    return _JSONValueField(
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        **{**common, "label": f"{label} (JSON)"},
    )


class _JSONValueField(forms.CharField):
    """A value typed as JSON: the property's type is one no single input expresses."""

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        return None if text in ("", None) else _json_value(text)
