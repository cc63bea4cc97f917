"""A team account's stack (``dpc setup-user-account``) and its constructs."""
