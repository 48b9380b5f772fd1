"""HL7 v2 messages (ADT, ORU, DFT): parsing, field helpers and the adapter.

Importing the package registers the ``hl7v2`` format; ``adapt`` and ``detect`` are its entry
points (adapter.py)."""

from adapters.hl7v2.adapter import adapt, detect

__all__ = ["adapt", "detect"]
