"""The graded risk engine (pure)."""
