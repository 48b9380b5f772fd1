"""Format modules; importing this package registers each of them.

Order is the order ``--format auto`` tries them: unambiguous signatures first (magic numbers
of attachments, HL7 v2's MSH segment, FHIR's resourceType or namespace, CDA's
ClinicalDocument in the HL7 v3 namespace, police and death-certificate document names, the
2301 fee-detail field codes), the CSV heuristic last (``adapters.LAST_RESORT`` also keeps it
last).
"""
# ruff: noqa: I001  (the order below is the detection order, not alphabetical)

from adapters import attachment as _attachment  # noqa: F401  (registers "attachment")
from adapters import hl7v2 as _hl7v2  # noqa: F401  (registers "hl7v2")
from adapters import fhir as _fhir  # noqa: F401  (registers "fhir")
from adapters import cda as _cda  # noqa: F401  (registers "cda")
from adapters import police as _police  # noqa: F401  (registers "police")
from adapters import death_certificate as _death  # noqa: F401  (registers "death_certificate")
from adapters import nhsa_2301 as _nhsa_2301  # noqa: F401  (registers "nhsa_2301")
from adapters import csv_bill as _csv_bill  # noqa: F401  (registers "csv_bill")
