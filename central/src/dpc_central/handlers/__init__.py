"""Lambda handlers of the central and user-account stacks.

Entry points named by the stacks (see :mod:`dpc_central.conventions`):
``trigger_manager.handle``, ``registration.handle``, ``reconciler.handle``,
``execution_tracker.handle`` (central account; channels' services, such as
dpc-notify-slack's poster, live in their plugins) and
``registration_client.handle`` (user accounts: the ``onEvent`` handler of the
``Custom::DpcRegistration`` provider framework).
"""
