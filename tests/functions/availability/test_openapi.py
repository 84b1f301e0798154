"""docs/api/availability-openapi.yaml (what Salesforce External Services imports) agrees with template.yaml,
with the function's routes, and with the pydantic models that shape the requests and answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from availability import handler, models

ROOT = Path(__file__).resolve().parents[3]
SPEC_PATH = ROOT / "docs" / "api" / "availability-openapi.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Reads template.yaml's short tags (!Ref, !Sub, ...) as None: only literal values are compared here."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


def operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in spec["paths"].items() for method in item}


def template_operations() -> set[tuple[str, str]]:
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    events = template["Resources"]["AvailabilityFunction"]["Properties"]["Events"]
    assert template["Resources"]["AvailabilityApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    return {(e["Properties"]["Path"], e["Properties"]["Method"].upper()) for e in events.values()
            if e["Type"] == "Api"}


def test_spec_is_openapi_3_0_with_operation_ids(spec):
    assert spec["openapi"].startswith("3.0.")  # External Services imports OpenAPI 2.0 and 3.0, not 3.1
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == 2


def test_every_operation_is_in_the_template_and_vice_versa(spec):
    assert operations(spec) == template_operations()


def test_every_operation_is_a_route_of_the_function_and_vice_versa(spec):
    generated = handler.app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)
    routes = {(path, method.upper()) for path, item in generated["paths"].items() for method in item
              if method in ("get", "post", "put", "patch", "delete")}
    assert operations(spec) == routes


def test_path_and_query_parameters_match_the_function(spec):
    params = spec["paths"]["/products/{sku}/availability"]["get"]["parameters"]
    by_name = {p["name"]: p for p in params}
    assert by_name["sku"]["in"] == "path"
    assert by_name["sku"]["schema"]["pattern"] == models.SKU_PATTERN
    quantity = by_name["quantity"]
    assert (quantity["in"], quantity["required"]) == ("query", False)
    assert (quantity["schema"]["minimum"], quantity["schema"]["maximum"]) == (1, models.MAX_QUANTITY)
    assert quantity["schema"]["default"] == 1


@pytest.mark.parametrize("status", ["200", "400", "404", "500", "502", "503", "504"])
def test_every_status_the_function_answers_is_described(spec, status):
    for path, method in operations(spec):
        assert status in spec["paths"][path][method.lower()]["responses"], (path, method)


def test_a_body_that_is_not_json_is_described_as_a_415(spec):
    assert "415" in spec["paths"]["/availability"]["post"]["responses"]


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = spec["components"]["responses"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_error_responses_use_the_error_body(spec):
    for item in spec["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                if status != "200":
                    schema = _resolve(spec, response)["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}


MODELS = [models.ItemRequest, models.BatchRequest, models.WarehouseAvailability, models.Availability,
          models.BatchAvailability, models.ErrorBody]
COMPARED = ("type", "format", "$ref", "pattern", "minimum", "maximum", "minItems", "maxItems", "default")


def _comparable(prop: dict[str, Any]) -> dict[str, Any]:
    kinds = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    if len(kinds) == 1:  # Optional[X] in pydantic's schema is X with nullable: true in OpenAPI 3.0
        prop = {**kinds[0], **{k: v for k, v in prop.items() if k not in ("anyOf", "default") or v is not None}}
        prop.pop("anyOf", None)
    out = {k: prop[k] for k in COMPARED if k in prop}
    if out.get("format") not in (None, "date-time"):  # int32/int64 are hints for Salesforce's Apex types
        out.pop("format")
    if "items" in prop:
        out["items"] = _comparable(prop["items"])
    return out


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_schemas_match_the_pydantic_models(spec, model):
    documented = spec["components"]["schemas"][model.__name__]
    actual = model.model_json_schema(ref_template="#/components/schemas/{model}")
    assert set(documented["properties"]) == set(model.model_fields)
    assert set(documented.get("required", [])) == set(actual.get("required", []))
    assert documented.get("additionalProperties", True) == (model.model_config.get("extra") != "forbid")
    for name, prop in actual["properties"].items():
        assert _comparable(documented["properties"][name]) == _comparable(prop), f"{model.__name__}.{name}"


def test_every_documented_schema_is_a_model(spec):
    assert set(spec["components"]["schemas"]) == {m.__name__ for m in MODELS}
