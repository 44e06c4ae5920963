"""The pure quoting brain: quotes, costs, online estimators. No I/O, no clock reads."""
