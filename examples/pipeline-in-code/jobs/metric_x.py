"""Metric X (stand-in job of the example; the real one reads listings and searches)."""

print("metric x")
