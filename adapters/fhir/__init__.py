"""FHIR R4 (JSON and XML): the resource tree, values, subjects, mapping and the adapter.

Importing the package registers the ``fhir`` format; ``adapt`` and ``detect`` are its entry
points (adapter.py)."""

from adapters.fhir.adapter import adapt, detect

__all__ = ["adapt", "detect"]
