"""The local runtime: the whole dpc flow on one machine, no AWS account.

Accounts are simulated from each pipeline's ``account``; state lives in SQLite under
the workspace (``.dpc/state.db``); the same trigger engine and plugins as on AWS.
"""
