"""Chaos engineering for notar: real processes, one fault at a time, and the "nothing lost"
checker (see loadtest/chaos.py, RELIABILITY.md)."""
