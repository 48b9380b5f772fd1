"""Helpers the anchor-worker tests share (crash safety, reconciliation at start)."""

from __future__ import annotations

from gateway.core.envelope import sign_packet
from gateway.core.packet import new_packet
from gateway.services.publish import Accepted
from gateway.services.wiring import Services
from tests.support import Institution


def publish(services: Services, inst: Institution, n: int, *,
            urgent: bool = False) -> list[Accepted]:
    """``n`` lab reports by ``inst``, published in one call straight to the publisher (no
    HTTP); what it answered, promises included."""
    envs = [sign_packet(new_packet(kind="hospital.lab_report", issuer=inst.issuer,
                                   subject="ee" * 32, body={"n": i}, urgent=urgent),
                        inst.key).to_json() for i in range(n)]
    return services.publisher.publish(envs)
