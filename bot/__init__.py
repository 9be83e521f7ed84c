"""Nano Banana for Slack: the domain (no Bolt imports here)."""
