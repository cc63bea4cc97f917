"""dpc central account: CDK stacks and Lambda handlers."""

__version__ = "0.1.0"
