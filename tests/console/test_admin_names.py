"""The Django admin names our models in plain English: its index and headings show the plural."""

from django.contrib import admin


def test_no_model_is_named_with_a_doubled_plural_s() -> None:
    doubled = [
        f"{model._meta.label}: {model._meta.verbose_name_plural}"
        for model in admin.site._registry
        if str(model._meta.verbose_name).endswith("s")
        and str(model._meta.verbose_name_plural) == f"{model._meta.verbose_name}s"
    ]

    assert not doubled, "set Meta.verbose_name_plural: " + ", ".join(doubled)
