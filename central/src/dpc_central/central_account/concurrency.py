"""Reserved concurrency of the central account's Lambdas: one table.

Reserved concurrency both guarantees a function that many concurrent executions and caps
it there (Lambda Developer Guide, "Configuring reserved concurrency"). The trigger
manager gets a guarantee, so a flood on any other function (a plugin's, the
registration API's) cannot throttle it; every other function gets a cap, so a flood
stays within it. Lambda refuses a reservation that leaves the account less than 100
unreserved concurrent executions (same page: "Lambda ... always leaves 100 ... for
functions that don't have reserved concurrency"), and the default account concurrency
is 1,000 (Lambda Developer Guide, "Lambda quotas"; new accounts may start lower and must
ask for the default first). :data:`RESERVED` therefore totals at most
``DEFAULT_ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM``, with room for the team stacks'
reaper if a team account is also the central one.
"""

from __future__ import annotations

#: Lambda's default concurrency per account and Region ("Lambda quotas").
DEFAULT_ACCOUNT_CONCURRENCY = 1000
#: What Lambda keeps unreserved ("Configuring reserved concurrency").
UNRESERVED_MINIMUM = 100

#: Reserved concurrent executions per central function.
RESERVED: dict[str, int] = {
    # Guaranteed: the status path. Its FIFO queue runs at most one batch per message
    # group at a time, so more than the busiest groups cannot be used anyway.
    "trigger-manager": 50,
    "execution-tracker": 20,
    "registration": 10,
    "reconciler": 1,
    # Each plugin handler and each plugin construct's function (the Slack poster):
    # a cap, so what reaches them from member accounts cannot eat the account's pool.
    "plugin": 5,
}

#: Most concurrent invocations each SQS event source mapping may make (its
#: ``ScalingConfig.MaximumConcurrency``): together at most the function's reservation, so
#: the mapping never meets a throttle — a throttled SQS batch returns to the queue and
#: counts as a receive, which would walk status events towards their dead-letter queue
#: (Lambda Developer Guide, "Configuring maximum concurrency for Amazon SQS event
#: sources").
EVENT_SOURCE_MAX: dict[str, int] = {
    "trigger-manager:status": 40,
    "trigger-manager:retry": 10,
    "plugin": 5,
}
