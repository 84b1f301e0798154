"""A loopback HTTP front for an API Gateway Lambda handler: the request becomes a REST API proxy event, the
handler's answer becomes the HTTP response. It plays `sam local start-api` (which needs Docker) so the
carrier stand-in can call the real webhook handler over HTTP in tests and demos."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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


class LocalApiGateway:
    """``with LocalApiGateway(handler) as gw: requests.post(gw.url + "/shipments/events", ...)``"""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0):
        self.handler = handler
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalApiGateway:
        gateway = self

        class _Request(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                parts = urlsplit(self.path)
                event = rest_proxy_event(self.command, parts.path, body=body, headers=dict(self.headers.items()),
                                         query=dict(parse_qsl(parts.query)) or None,
                                         base64_body=body is not None)
                try:
                    result = gateway.handler(event, LocalContext())
                except Exception as exc:  # API Gateway's answer to a function error
                    result = {"statusCode": 502, "body": json.dumps({"message": f"Internal server error "
                                                                                f"({type(exc).__name__})"})}
                payload = result.get("body") or ""
                data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
                self.send_response(int(result.get("statusCode", 502)))
                for name, value in (result.get("headers") or {}).items():
                    self.send_header(name, str(value))
                for name, values in (result.get("multiValueHeaders") or {}).items():
                    for value in values:
                        self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:  # quiet: tests read the handler's own logs
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), _Request)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="local-api-gateway", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> LocalApiGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
