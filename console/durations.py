"""Durations such as "30m", as the agent APIs accept them: plain Python, no DRF, so the state
machine can shorten a request's timeout without importing the API layer."""

# Digits beyond which a duration exceeds every maximum (10^12 s is 31,000 years): not converted,
# since Python refuses to turn more than 4,300 digits into an int (and it would be wasted work).
_HUGE_DURATION_DIGITS = 12
_DURATION_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(number: str, unit: str, *, maximum: int) -> int:
    """Seconds in `number` `unit`s ("s", "m" or "h"), at most `maximum`.

    `number` is digits already matched by the caller's pattern, of any length.
    """
    if len(number) > _HUGE_DURATION_DIGITS:
        return maximum
    return min(int(number) * _DURATION_UNIT_SECONDS[unit], maximum)
