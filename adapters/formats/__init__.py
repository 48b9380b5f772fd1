"""Format modules; importing this package registers each of them."""

from adapters import csv_bill  # noqa: F401
