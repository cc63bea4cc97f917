"""Local fakes of external services, speaking their real protocols on 127.0.0.1.

Each fake is a context manager that serves on an ephemeral port in a daemon thread and
stops when the ``with`` block ends, so a test cannot leave a server behind.
"""
