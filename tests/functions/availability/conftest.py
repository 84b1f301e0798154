"""The availability function invoked as Lambda would be (API Gateway proxy events), against the ERP
stand-in over HTTP, with the ERP's API key in moto's Secrets Manager."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters.base import clear_caches
from moto import mock_aws

from stand_ins.erp import ErpServer

ERP_KEY = "erp-key-s3cr3t-7f9c2a"

# Short timeouts so that failure tests take fractions of a second; production defaults are in config.py.
FAST = {
    "ERP_CONNECT_TIMEOUT_SECONDS": "0.3",
    "ERP_READ_TIMEOUT_SECONDS": "0.4",
    "ERP_MAX_ATTEMPTS": "2",
    "AVAILABILITY_BUDGET_SECONDS": "2.0",
    "AVAILABILITY_CACHE_TTL_SECONDS": "0",
    "AVAILABILITY_STALE_IF_ERROR_SECONDS": "0",
    "BREAKER_FAILURE_THRESHOLD": "2",
    "BREAKER_RESET_SECONDS": "1",
}


@pytest.fixture(scope="session")
def erp_server() -> Iterator[ErpServer]:
    with ErpServer(api_key=ERP_KEY) as erp:
        yield erp


@pytest.fixture
def erp(erp_server: ErpServer) -> Iterator[ErpServer]:
    erp_server.come_up()
    erp_server.reset()
    yield erp_server
    erp_server.come_up()
    erp_server.reset()


@pytest.fixture
def secret_arn() -> Iterator[str]:
    with mock_aws():
        clear_caches()
        client = boto3.client("secretsmanager")
        yield client.create_secret(Name="erp/api-key", SecretString=json.dumps({"api_key": ERP_KEY}))["ARN"]
    clear_caches()


@pytest.fixture
def handler_module():
    from availability import handler

    handler.reset()
    yield handler
    handler.reset()


@pytest.fixture
def configure(monkeypatch, erp, secret_arn, handler_module) -> Callable[..., None]:
    """Set the function's environment (FAST defaults, overridable) and start it cold."""

    def apply(**overrides: str) -> None:
        env = {"ERP_BASE_URL": erp.url, "ERP_API_KEY_SECRET_ARN": secret_arn, **FAST, **overrides}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        handler_module.reset()

    apply()
    return apply


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


def api_event(method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None,
              raw_body: str | None = None) -> dict:
    """An API Gateway REST (proxy) event, as the template's two routes produce them."""
    resource, path_parameters = path, None
    if path.startswith("/products/") and path.endswith("/availability"):
        sku = path[len("/products/"):-len("/availability")]
        resource, path_parameters = "/products/{sku}/availability", {"sku": sku}
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": {"Content-Type": "application/json", "Accept": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Accept": ["application/json"]},
        "queryStringParameters": query, "multiValueQueryStringParameters": {k: [v] for k, v in query.items()}
        if query else None,
        "pathParameters": path_parameters, "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": "dev",
                           "requestId": "req-1", "path": f"/dev{path}", "accountId": "123456789012",
                           "identity": {"sourceIp": "13.108.0.1",
                                        "userArn": "arn:aws:iam::123456789012:user/salesforce-callout"}},
        "body": text, "isBase64Encoded": False,
    }


@pytest.fixture
def invoke(configure, handler_module, lambda_context) -> Callable[..., Reply]:
    def call(method: str, path: str, *, context: Any = None, **kwargs: Any) -> Reply:
        response = handler_module.handler(api_event(method, path, **kwargs), context or lambda_context)
        headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        headers.update(response.get("headers") or {})
        body = json.loads(response["body"]) if response.get("body") else None
        return Reply(response["statusCode"], body, headers)

    return call


@pytest.fixture
def erp_calls(erp: ErpServer) -> Callable[[], list[tuple[str, str]]]:
    """(method, path) of every call the ERP received since the test began."""
    return lambda: [(entry["method"], entry["path"]) for entry in erp.requests()]


@pytest.fixture
def log_output(handler_module) -> Iterator[io.StringIO]:
    """Everything the function's Powertools logger writes during the test (JSON lines, extras included)."""
    stream = io.StringIO()
    handler = handler_module.logger.registered_handler
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)
