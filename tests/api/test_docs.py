"""/docs and /redoc work offline, and /openapi.json declares the bearer scheme and each
route's real error answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.chain.client import Chain
from gateway.config import Settings
from gateway.services.wiring import build_services


@pytest.fixture(scope="module")
def client(embedded_chain: Chain, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[TestClient]:
    home: Path = tmp_path_factory.mktemp("docs")
    sv = build_services(Settings(home=home), chain=embedded_chain,
                        deployment=embedded_chain.deploy())
    with TestClient(create_app(sv, run_worker=False)) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_gateway(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?'([^']+)'""", html.text)
    assets = [u for pair in urls for u in pair if u]
    assert assets and all(u.startswith("/") for u in assets), assets  # no CDN, no fonts
    for url in assets:
        assert client.get(url).status_code == 200, url


def test_openapi_declares_bearer_auth_and_error_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    publish = spec["paths"]["/v1/records"]["post"]
    assert publish["security"] == [{"bearer": []}]
    assert {"400", "401", "403", "413", "422", "503"} <= set(publish["responses"])
    assert publish["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}
    assert "404" in spec["paths"]["/v1/records/{digest}/receipt"]["get"]["responses"]
    assert "409" in spec["paths"]["/v1/claims/{claim_id}/close"]["post"]["responses"]
    health = spec["paths"]["/healthz"]["get"]
    assert "security" not in health and set(health["responses"]) == {"200"}
    for ops in spec["paths"].values():  # the credential is the scheme, not a field
        for op in ops.values():
            assert all(p["name"].lower() != "authorization" for p in op.get("parameters", []))


def test_documented_errors_are_what_the_gateway_answers(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ErrorBody"]
    anonymous = client.post("/v1/records", json={})
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == set(schema["required"]) == {"error"}
    assert {"code", "message"} <= set(anonymous.json()["error"])
