"""The chain layer: the only package that imports web3 (client, contract wrappers, errors)."""
