"""Constructs and helpers shared by the central, user-account and pipeline stacks."""
