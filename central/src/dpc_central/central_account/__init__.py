"""The central account's stack and its constructs (one construct per module)."""
