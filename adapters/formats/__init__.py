"""Format modules; importing this package registers each of them.

Import order is the order ``--format auto`` asks each adapter's ``detect``: content with a
magic number first, the loosest detector (a CSV header row) last.
"""

from adapters import (
    attachment,  # noqa: F401  (PDF/JPEG/PNG/HEIC magic numbers)
    csv_bill,  # noqa: F401  (text with a bill header row: keep last)
    death_certificate,  # noqa: F401  (JSON/XML naming a death certificate)
    police,  # noqa: F401  (JSON/XML naming a police document type)
)
