"""A project's pipeline stack (``dpc synth``/``deploy``) and its constructs."""
