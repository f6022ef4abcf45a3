"""Policies: the rules that decide, at creation, whether a request is approved at once, denied at
once or held for review, and the guardrails (throttles, circuit breaker, kill switch) around them.

engine.py is pure matching over a snapshot; evaluation.py loads rules and guardrail state and
turns them into a verdict; halts.py stops and resumes agents; backtest.py replays a draft rule.
"""
