"""Client-vs-simulator tests of the hedge client and policy."""
