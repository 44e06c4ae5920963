"""Fault-injecting proxies that sit between the agent and the services it talks to."""
