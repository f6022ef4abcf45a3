from django import forms


class HaltForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Why (recorded with your name)"}),
    )


class ResumeForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.TextInput())
