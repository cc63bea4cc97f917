"""The resolver moved into the product (``dpc_central.cfn_resolve``: the quota checker of
``dpc synth`` reads templates with it); tests import it from here as before."""

from dpc_central.cfn_resolve import Resolver, fake_id

__all__ = ["Resolver", "fake_id"]
