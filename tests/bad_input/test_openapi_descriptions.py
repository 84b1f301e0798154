"""The OpenAPI descriptions the fuzzers read say what the functions do: same fields, limits and routes. A fuzzer
driven by a stale description would test the wrong contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from shipment_webhook.models import MAX_EVENTS, ShipmentEventBatch, ShipmentStatus, ShipmentStatusChanged

ROOT = Path(__file__).resolve().parents[2]
SHIPMENTS = yaml.safe_load((ROOT / "docs" / "api" / "shipments-openapi.yaml").read_text())
OUTBOUND = yaml.safe_load((ROOT / "docs" / "api" / "outbound-message-openapi.yaml").read_text())


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from tests.template.conftest import load_template

    return load_template((ROOT / "template.yaml").read_text())


def _constraints(model: Any, name: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in model.model_fields[name].metadata:
        for key in ("min_length", "max_length", "pattern"):
            if getattr(item, key, None) is not None:
                found[key] = getattr(item, key)
    return found


def test_the_shipment_event_schema_is_the_model() -> None:
    schema = SHIPMENTS["components"]["schemas"]["ShipmentStatusChanged"]
    fields = ShipmentStatusChanged.model_fields
    assert set(schema["properties"]) == set(fields)
    assert set(schema["required"]) == {name for name, f in fields.items() if f.is_required()}
    assert schema["properties"]["status"]["enum"] == [s.value for s in ShipmentStatus]
    for name, spec in schema["properties"].items():
        expected = _constraints(ShipmentStatusChanged, name)
        assert {k: spec[{"min_length": "minLength", "max_length": "maxLength", "pattern": "pattern"}[k]]
                for k in expected} == expected, name
    batch = SHIPMENTS["components"]["schemas"]["ShipmentEventBatch"]
    assert batch["properties"]["events"]["maxItems"] == MAX_EVENTS
    assert set(batch["properties"]) == set(ShipmentEventBatch.model_fields)


def test_the_described_routes_are_the_template_routes(template: dict[str, Any]) -> None:
    for function, spec in (("ShipmentWebhookFunction", SHIPMENTS), ("OutboundMessageFunction", OUTBOUND)):
        events = template["Resources"][function]["Properties"]["Events"]
        routes = {(e["Properties"]["Path"], e["Properties"]["Method"]) for e in events.values() if e["Type"] == "Api"}
        assert routes == {(path, method) for path, item in spec["paths"].items() for method in item}, function


@pytest.mark.parametrize("name", ["orders-openapi.yaml", "shipments-openapi.yaml", "availability-openapi.yaml"])
def test_every_error_of_the_http_apis_is_described_as_the_one_envelope(name: str) -> None:
    """{"error", "message"} (edge_kit/http_api.py), and a body that is not JSON is described as a 415."""
    spec = yaml.safe_load((ROOT / "docs" / "api" / name).read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            kind, key = node["$ref"].split("/")[-2:]
            node = spec["components"][kind][key]
        return node

    posts = 0
    for item in spec["paths"].values():
        for method, operation in item.items():
            posts += method == "post"
            if method == "post":
                assert "415" in operation["responses"], name
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = resolve(resolve(response)["content"]["application/json"]["schema"])
                    assert {"error", "message"} <= set(schema["required"]), (name, status)
                    assert "code" not in schema["properties"], (name, status)
    assert posts
