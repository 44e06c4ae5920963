"""Hedging on a centralized exchange: the REST client and the hedging policy."""
