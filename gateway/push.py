"""Stable public path (DESIGN "Stable interfaces"): check a claimx webhook's signature.

A webhook receiver needs only :func:`verify_signature`; importing it from here loads no
database, HTTP client or web framework. The implementation lives in
:mod:`gateway.core.webhook`; the delivery machinery is :mod:`gateway.services.push`.
"""

from gateway.core.webhook import sign, verify_signature

__all__ = ["sign", "verify_signature"]
