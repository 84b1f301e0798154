"""API Gateway's own answers, rendered by the local stack from template.yaml's GatewayResponses and the
/contracts/signed request validator: every one is the edge kit's envelope {"error", "message"} and valid JSON,
even when API Gateway's message holds quotes (a missing property: [... (["account_id"])]). Then, behind the
gateway, bodies the functions must refuse in the same envelope (not JSON: 415; a quantity that is a string or
a boolean: 400), never a 500. Driven through the local stack's public interface only (LocalStack, its api_url,
api_key, iam_headers and secret_value)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from edge_kit.signatures import signed_headers
from local.stack import LocalStack
from local.stack.runtime import collecting_sink


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    lines: list = []
    with LocalStack(log_sink=collecting_sink(lines), retry_delays=(0.2,)) as running:
        yield running


def envelope(response: requests.Response) -> dict:
    body = json.loads(response.text)  # valid JSON, whatever the message
    assert isinstance(body.get("error"), str), body
    assert body["error"], body
    assert isinstance(body.get("message"), str), body
    return body


def signed_post(stack: LocalStack, path: str, body: str, content_type: str = "application/json") -> requests.Response:
    url = f"{stack.api_url}{path}"
    headers = {"Content-Type": content_type}
    headers.update(stack.iam_headers("POST", url, body, headers))
    return requests.post(url, data=body.encode(), headers=headers, timeout=30)


@pytest.mark.parametrize("body", ['{"account_id": "001000000000001AAA"}',  # missing contract_id: quotes
                                  '{"contract_id": "nope", "account_id": "001000000000001AAA"}',
                                  '{"contract_id": "800000000000001AAA", "account_id": "001000000000001AAA", '
                                  '"note": "a \\"quoted\\" word"}',
                                  '{"contract_id": "800\\"000\\"", "account_id": "001000000000001AAA"}',  # quoted value
                                  '{}', '[]'])
def test_a_contract_the_validator_refuses_is_a_json_400_envelope(stack, body):
    response = signed_post(stack, "/contracts/signed", body)
    assert response.status_code == 400
    assert envelope(response)["error"] == "invalid_request"


def test_an_unsigned_contract_is_a_json_403_envelope(stack):
    response = requests.post(f"{stack.api_url}/contracts/signed", data="{}", timeout=30)
    assert response.status_code == 403
    assert envelope(response)["error"] == "MISSING_AUTHENTICATION_TOKEN"


def test_an_unsigned_availability_check_is_the_same_envelope(stack):
    response = requests.get(f"{stack.api_url}/products/SKU-1001/availability", timeout=30)
    assert response.status_code == 403
    assert envelope(response) == {"error": "MISSING_AUTHENTICATION_TOKEN", "message": "Missing Authentication Token"}


@pytest.mark.parametrize("path", ["/orders", "/orders/async", "/shipments/events"])
def test_a_wrong_api_key_is_the_same_envelope(stack, path):
    response = requests.post(f"{stack.api_url}{path}", data="{}", timeout=30,
                             headers={"Content-Type": "application/json", "x-api-key": "wrong"})
    assert response.status_code == 403
    assert envelope(response)["error"] == "INVALID_API_KEY"


@pytest.mark.parametrize("path", ["/orders", "/shipments/events"])
def test_behind_the_key_the_functions_answer_in_the_same_envelope(stack, path):
    response = requests.post(f"{stack.api_url}{path}", data="{}", timeout=60,
                             headers={"Content-Type": "application/json", "x-api-key": stack.api_key})
    assert response.status_code == 401  # unsigned: the edge kit's signature middleware
    assert envelope(response)["error"] == "unauthorized"
    assert "WWW-Authenticate" in response.headers


# -- behind the gateway: bodies the functions refuse ------------------------------------------------------

NOT_JSON = [("text/plain", '{"items": [{"sku": "SKU-1001"}]}'), ("text/plain; charset=utf-8", "SKU-1001"),
            ("application/x-www-form-urlencoded", "items=SKU-1001"), ("multipart/form-data; boundary=x", "--x--")]


@pytest.mark.parametrize(("content_type", "body"), NOT_JSON)
def test_an_availability_body_that_is_not_json_is_a_415_envelope(stack, content_type, body):
    response = signed_post(stack, "/availability", body, content_type)
    assert response.status_code == 415, response.text
    assert envelope(response)["error"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("quantity", ['"5"', "true"])
def test_an_availability_quantity_that_is_not_a_number_is_a_400_naming_it(stack, quantity):
    body = json.dumps({"items": [{"sku": "SKU-1001", "quantity": json.loads(quantity)}]})
    response = signed_post(stack, "/availability", body)
    assert response.status_code == 400, response.text
    body = envelope(response)
    assert body["error"] == "INVALID_QUANTITY"
    assert "items.0.quantity" in body["message"]


@pytest.mark.parametrize("path", ["/orders", "/orders/async"])
@pytest.mark.parametrize(("content_type", "body"), NOT_JSON)
def test_a_signed_order_body_that_is_not_json_is_a_415_envelope(stack, path, content_type, body):
    key = json.loads(stack.secret_value("OrderSigningSecret"))["current"]
    data = body.encode()
    response = requests.post(f"{stack.api_url}{path}", data=data, timeout=60, headers={
        "Content-Type": content_type, "x-api-key": stack.api_key, **signed_headers(key, data)})
    assert response.status_code == 415, response.text
    assert envelope(response)["error"] == "unsupported_media_type"
