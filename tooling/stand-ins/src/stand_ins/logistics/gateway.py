"""A loopback HTTP front for an API Gateway Lambda handler: the request becomes a REST API proxy event, the
handler's answer becomes the HTTP response. It plays `sam local start-api` (which needs Docker) so the
carrier stand-in can call the real webhook handler over HTTP in tests and demos."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stand_ins.kit import Reply, Request, StandInService

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def rest_proxy_event(method: str, path: str, *, body: bytes | str | None = None,
                     headers: dict[str, str] | None = None, resource: str | None = None,
                     query: dict[str, str] | None = None, stage: str = "dev",
                     base64_body: bool = False) -> dict[str, Any]:
    """The event API Gateway (REST API, Lambda proxy integration) sends for one request."""
    raw = body.encode() if isinstance(body, str) else body
    headers = {"Host": "localhost", "X-Forwarded-Proto": "https", **(headers or {})}
    text = None if raw is None else (base64.b64encode(raw).decode() if base64_body else raw.decode())
    now = time.time()
    return {
        "resource": resource or path, "path": path, "httpMethod": method.upper(), "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path, "httpMethod": method.upper(), "path": f"/{stage}{path}",
            "accountId": "123456789012", "protocol": "HTTP/1.1", "stage": stage, "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(now * 1000), "apiId": "local",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent", "")},
        },
        "body": text, "isBase64Encoded": bool(base64_body and raw is not None),
    }


@dataclass
class LocalContext:
    """The parts of the Lambda context the project's handlers read."""

    function_name: str = "local-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:local-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_ms: int = 30_000
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.timeout_ms - (time.monotonic() - self.started) * 1000))


class _LambdaExchange:
    """Each request as the proxy event, the handler's answer (or API Gateway's 502 for its error) as the reply."""

    def __init__(self, handler: Handler):
        self.handler = handler

    def handle(self, req: Request, content_length: int = 0) -> Reply:
        body = req.body if content_length else None
        query = {k: v[-1] for k, v in req.query.items()} or None
        event = rest_proxy_event(req.method, req.path, body=body, headers=dict(req.headers), query=query,
                                 base64_body=body is not None)
        try:
            result = self.handler(event, LocalContext())
        except Exception as exc:  # API Gateway's answer to a function error
            result = {"statusCode": 502, "body": json.dumps({"message": f"Internal server error "
                                                                        f"({type(exc).__name__})"})}
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        headers: dict[str, str | list[str]] = {}
        for name, value in (result.get("headers") or {}).items():
            headers[name] = str(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = [str(v) for v in values]
        content_type = next((str(headers.pop(k)) for k in list(headers) if k.lower() == "content-type"),
                            "application/json")
        return Reply(int(result.get("statusCode", 502)), data, headers, content_type)


class LocalApiGateway(StandInService):
    """``with LocalApiGateway(handler) as gw: requests.post(gw.url + "/shipments/events", ...)``"""

    thread_name = "local-api-gateway"
    server_version = "LocalApiGateway/1.0"

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0):
        self.handler = handler
        super().__init__(_LambdaExchange(handler), host, port)
