"""Chain layer: the local node wrapper, RPC, signer, transaction pipeline, contract bindings."""
