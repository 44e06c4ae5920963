"""Keeper duties: funding settlement and liquidations."""
