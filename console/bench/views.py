"""The baseline the benchmark compares against: Django's request path with no work in it."""

from django.http import HttpRequest, JsonResponse


def bare(request: HttpRequest) -> JsonResponse:
    # Same middleware stack, same server process as the agent API: the ratio between the two is
    # the figure that survives a noisy machine.
    return JsonResponse({"ok": True})
