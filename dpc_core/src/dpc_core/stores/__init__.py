"""Store adapters of the trigger engine (see :mod:`dpc_core.store`)."""
