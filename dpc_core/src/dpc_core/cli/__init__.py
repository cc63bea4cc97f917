"""The ``dpc`` command line. Commands are imported only when they run."""
