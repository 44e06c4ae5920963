"""Venue adapters: one protocol, one implementation per venue."""
