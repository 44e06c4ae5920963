"""Simulators: market processes, the CEX exchange simulator, backtests and stress scenarios."""
