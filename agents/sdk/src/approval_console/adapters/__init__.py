"""Thin adapters for agent frameworks. Each imports its framework only when used."""
