"""Format modules; importing this package registers each of them."""

from adapters import fhir as _fhir  # noqa: F401  (registers "fhir")
from adapters import hl7v2 as _hl7v2  # noqa: F401  (registers "hl7v2")
