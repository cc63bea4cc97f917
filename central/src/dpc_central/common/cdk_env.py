"""Loading aws_cdk: only when a command needs it, with jsii's Node warnings silenced."""

from __future__ import annotations

import os


def prepare_jsii() -> None:
    """Silence jsii's warnings about the Node version before aws_cdk is first imported.

    Node 20 works for synth but jsii prints a banner on every start; the banner is
    noise in ``dpc`` output and in test logs.
    """
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,21,22")
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
