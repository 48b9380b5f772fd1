"""Format modules; importing this package registers each of them.

Order is the order ``--format auto`` tries them: the formats with unambiguous signatures
(HL7 v2's MSH segment, FHIR's resourceType) before the CSV heuristic.
"""
# ruff: noqa: I001  (the order below is the detection order, not alphabetical)

from adapters import hl7v2 as _hl7v2  # noqa: F401  (registers "hl7v2")
from adapters import fhir as _fhir  # noqa: F401  (registers "fhir")
from adapters import csv_bill as _csv_bill  # noqa: F401  (registers "csv_bill")
