"""claimx gateway: signed claim packets, the evidence log, chain anchoring, verification."""

__version__ = "0.1.0"
