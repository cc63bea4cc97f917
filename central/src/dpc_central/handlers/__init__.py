"""Lambda handlers of the central and user-account stacks.

Entry points named by the stacks (see :mod:`dpc_central.conventions`):
``trigger_manager.handle``, ``registration.handle``, ``slack_poster.handle``,
``reconciler.handle``, ``execution_tracker.handle`` (central account) and
``registration_client.handle`` (user accounts: the ``onEvent`` handler of the
``Custom::DpcRegistration`` provider framework).
"""
