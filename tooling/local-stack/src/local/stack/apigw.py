"""API Gateway (REST APIs) on localhost: routes from template.yaml, requests as Lambda proxy events.

Routes come from each AWS::ApiGateway::RestApi's Body in the translated template (template.py: SAM has put
every Api event, the Auth settings and the GatewayResponses there, as it does for a deployment): Lambda proxy
integrations, SQS direct integrations (``sqs:path/...`` or ``sqs:action/SendMessage``, with request
validation against the OpenAPI model), mock integrations (SAM's CORS preflight ones too), with their mapping
templates rendered by mapping.py. Every API is served from the root of one local server, like
``sam local start-api``; the stage is only reported in the events' requestContext.

Auth, as API Gateway answers it: an AWS_IAM route needs an ``Authorization: AWS4-HMAC-SHA256 Credential=...,
SignedHeaders=..., Signature=...`` header and an X-Amz-Date (or Date) header; the signature itself is not
verified locally (there is no IAM). An API-key route needs ``x-api-key`` equal to the stack's generated key.
Unknown paths and methods answer 403 ``{"message":"Missing Authentication Token"}``. Gateway responses
(x-amazon-apigateway-gateway-responses, where SAM puts GatewayResponses) shape these errors as the template
says, rendered by the same engine as the mapping templates.

Hand-written because no library serves: moto's API Gateway stores REST APIs but does not route requests to
Lambda proxies with SigV4/API-key checks, request validation and gateway responses; LocalStack does, but
needs Docker and its whole platform.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .cfn import ACCOUNT_ID
from .mapping import TemplateError, render, render_gateway_response
from .template import REGION, RestApi, StackModel

MAX_PAYLOAD = 10 * 1024 * 1024
# The listen backlog: connections the kernel holds while the server's thread is busy accepting. Python's
# default of 5 resets or stalls callers once a few dozen connect at once; 100 concurrent callers are the
# local stack's sizing target (docs/local-stack.md, "Concurrency"), so this leaves room for bursts above it
# (the kernel caps it at net.core.somaxconn).
LISTEN_BACKLOG = 1024

# Gateway response types: default status, message and x-amzn-ErrorType.
RESPONSE_TYPES = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token", "MissingAuthenticationTokenException"),
    "INCOMPLETE_SIGNATURE": (403, None, "IncompleteSignatureException"),
    "INVALID_API_KEY": (403, "Forbidden", "ForbiddenException"),
    "BAD_REQUEST_BODY": (400, "Invalid request body", "BadRequestException"),
    "BAD_REQUEST_PARAMETERS": (400, None, "BadRequestException"),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Unsupported Media Type", "UnsupportedMediaTypeException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestTooLongException"),
    "INTEGRATION_FAILURE": (502, "Internal server error", "InternalServerErrorException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", "InternalServerErrorException"),
    "API_CONFIGURATION_ERROR": (500, "Internal server error", "InternalServerErrorException"),
}


@dataclass
class Route:
    api: RestApi
    method: str
    path: str
    kind: str  # "lambda", "sqs" or "mock"
    function: str | None = None
    iam: bool = False
    api_key: bool = False
    timeout_ms: int = 29_000
    integration: dict[str, Any] = field(default_factory=dict)
    body_schema: dict[str, Any] | None = None
    required_params: list[tuple[str, str]] = field(default_factory=list)  # ("querystring"|"header", name)
    regex: re.Pattern[str] = field(init=False)
    param_names: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.regex = api_path_regex(self.path)
        names = re.findall(r"\{([A-Za-z0-9_.-]+?)\+?\}", self.path)
        self.param_names = {"p_" + re.sub(r"[^A-Za-z0-9_]", "_", n): n for n in names}

    @property
    def specificity(self) -> tuple[int, int, int]:
        segments = self.path.strip("/").split("/")
        literal = sum(1 for s in segments if not s.startswith("{"))
        greedy = sum(1 for s in segments if s.endswith("+}"))
        return (-greedy, literal, len(segments))

    def describe(self) -> str:
        auth = "IAM" if self.iam else "API key" if self.api_key else "open"
        target = self.function if self.kind == "lambda" else f"{self.kind} integration"
        return f"{self.method:<6} {self.path}  -> {target} ({auth}; {self.api.logical_id})"


@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes


class ApiGateway:
    """Routes and request handling; `serve()` puts it on an HTTP port."""

    def __init__(self, model: StackModel, invoke: Callable[[str, Any], Any], sqs_client: Callable[[], Any],
                 api_key: str | None = None, log_sink: Callable[[str, str], None] | None = None):
        self.model = model
        self.log_sink = log_sink
        self.invoke = invoke
        self.sqs_client = sqs_client
        self.api_key = api_key or secrets.token_urlsafe(30)
        self.routes: list[Route] = []
        self.problems: list[str] = []
        self.control: Callable[[str, str, bytes], Reply | None] | None = None
        self._server: ThreadingHTTPServer | None = None
        self._build()

    # -- routes -------------------------------------------------------------------------------------------------

    def _build(self) -> None:
        for api in self.model.apis.values():
            if api.definition:
                self._from_definition(api)
        self.routes.sort(key=lambda r: r.specificity, reverse=True)

    def _add(self, route: Route) -> None:
        for other in self.routes:
            if other.path == route.path and other.method == route.method:
                if other.api is not route.api:
                    self.problems.append(f"{route.method} {route.path} is defined by both {other.api.logical_id} "
                                         f"and {route.api.logical_id}; locally {other.api.logical_id} answers")
                return
        self.routes.append(route)

    def _from_definition(self, api: RestApi) -> None:
        where = f"{api.logical_id}.Body"
        try:
            doc = self.model.evaluate(api.definition, where)
        except Exception as exc:
            self.problems.append(f"{where}: {exc}; its routes are not wired")
            return
        if doc.get("x-amazon-apigateway-policy") or api.properties.get("Policy"):
            self.problems.append(f"{api.logical_id}: the API's resource policy is not enforced locally")
        schemes = {**(doc.get("securityDefinitions") or {}), **((doc.get("components") or {}).get("securitySchemes")
                                                               or {})}
        validators = doc.get("x-amazon-apigateway-request-validators") or {}
        default_validator = doc.get("x-amazon-apigateway-request-validator")
        for path, item in (doc.get("paths") or {}).items():
            for method, op in item.items():
                if not isinstance(op, dict) or (method.startswith("x-") and method != "x-amazon-apigateway-any-method"):
                    continue
                integration = op.get("x-amazon-apigateway-integration")
                if not integration:
                    continue
                verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                kind, function = self._integration_kind(integration, f"{where}.paths.{path}.{method}")
                if kind is None:
                    continue
                iam = api_key = False
                for requirement in op.get("security", doc.get("security") or []):
                    for name in requirement:
                        if name == "NONE":  # SAM's marker for a route without the API's default authorizer
                            continue
                        scheme = schemes.get(name, {})
                        authtype = str(scheme.get("x-amazon-apigateway-authtype", "")).lower()
                        if authtype == "awssigv4":
                            iam = True
                        elif scheme.get("type") == "apiKey" and scheme.get("name", "").lower() == "x-api-key":
                            api_key = True
                        else:
                            self.problems.append(f"{where}: security scheme {name!r} on {verb} {path} is not "
                                                 "enforced locally")
                validator = validators.get(op.get("x-amazon-apigateway-request-validator", default_validator), {})
                body_schema = None
                if validator.get("validateRequestBody"):
                    body_schema = _body_schema(op, doc)
                required = []
                if validator.get("validateRequestParameters"):
                    for param in op.get("parameters") or []:
                        if param.get("required") and param.get("in") in ("query", "header"):
                            required.append(("querystring" if param["in"] == "query" else "header", param["name"]))
                timeout = int(integration.get("timeoutInMillis", 29_000))
                self._add(Route(api, verb, path, kind, function, iam=iam, api_key=api_key, timeout_ms=timeout,
                                integration=integration, body_schema=body_schema, required_params=required))

    def _integration_kind(self, integration: dict[str, Any], where: str) -> tuple[str | None, str | None]:
        itype = str(integration.get("type", "")).lower()
        uri = str(integration.get("uri", ""))
        if itype == "aws_proxy" and ":lambda:path/" in uri:
            arn = uri.split("/functions/", 1)[-1].removesuffix("/invocations")
            for fn in self.model.functions.values():
                if arn in (fn.arn, fn.name):
                    return "lambda", fn.logical_id
            self.problems.append(f"{where}: the Lambda integration's function {arn} is not in the template")
            return None, None
        if itype == "aws" and ":sqs:" in uri:
            return "sqs", None
        if itype == "mock":
            return "mock", None
        self.problems.append(f"{where}: integration type {itype or '?'} ({uri}) is not emulated locally")
        return None, None

    # -- serving --------------------------------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 3000) -> ApiGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "local-apigateway"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers: dict[str, list[str]] = {}
                for name, value in self.headers.items():
                    headers.setdefault(name, []).append(value)
                reply = None
                if gateway.control is not None and self.path.startswith("/__local/"):
                    reply = gateway.control(self.command, self.path, body)
                if reply is None:
                    reply = gateway.handle(self.command, self.path, headers, body, self.client_address[0])
                self.send_response(reply.status)
                for name, values in reply.headers.items():
                    for value in values:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server((host, port), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                         name="local-apigateway").start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- one request -------------------------------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], RestApi | None]:
        """The route for a request, its path parameters, and (when only the method is wrong) the API of the path."""
        path_api = None
        for route in self.routes:
            m = route.regex.match(path)
            if not m:
                continue
            if route.method in (method, "ANY"):
                params = {route.param_names[k]: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
                return route, params, route.api
            path_api = path_api or route.api
        return None, {}, path_api

    def handle(self, method: str, raw_path: str, headers: dict[str, list[str]], body: bytes,
               source_ip: str = "127.0.0.1") -> Reply:
        request_id = str(uuid.uuid4())
        parsed = urllib.parse.urlsplit(raw_path)
        path = parsed.path or "/"
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        route, path_params, api = self.match(method, path)
        if route is None:
            return self.gateway_response(api, "MISSING_AUTHENTICATION_TOKEN", request_id)
        api = route.api
        if len(body) > MAX_PAYLOAD:
            return self.gateway_response(api, "REQUEST_TOO_LARGE", request_id)
        single = {k: v[-1] for k, v in headers.items()}
        lower = {k.lower(): v for k, v in single.items()}
        identity: dict[str, Any] = {"sourceIp": source_ip, "userAgent": lower.get("user-agent")}
        if route.iam:
            problem = sigv4_problem(lower)
            if problem == "missing":
                return self.gateway_response(api, "MISSING_AUTHENTICATION_TOKEN", request_id)
            if problem:
                return self.gateway_response(api, "INCOMPLETE_SIGNATURE", request_id, message=problem)
            access_key = re.search(r"Credential=([^/,\s]+)", lower["authorization"])
            identity.update({"accessKey": access_key.group(1) if access_key else None, "accountId": ACCOUNT_ID,
                             "caller": "AIDALOCALCALLER", "user": "AIDALOCALCALLER",
                             "userArn": f"arn:aws:iam::{ACCOUNT_ID}:user/local"})
        if route.api_key:
            if not secrets.compare_digest(lower.get("x-api-key", ""), self.api_key):
                return self.gateway_response(api, "INVALID_API_KEY", request_id)
            identity.update({"apiKey": self.api_key, "apiKeyId": "localkey01"})
        context = request_context(route, method, path, request_id, identity)
        if route.required_params:
            missing = [name for where, name in route.required_params
                       if (where == "querystring" and name not in query) or (where == "header" and
                                                                           name.lower() not in lower)]
            if missing:
                return self.gateway_response(api, "BAD_REQUEST_PARAMETERS", request_id,
                                             message=f"Missing required request parameters: [{', '.join(missing)}]")
        if route.body_schema is not None:
            errors = validate_body(route.body_schema, body)
            if errors:
                return self.gateway_response(api, "BAD_REQUEST_BODY", request_id,
                                             validation="[" + ", ".join(errors) + "]")
        if route.kind == "lambda":
            event = proxy_event(route, method, path, path_params, query, headers, body, context)
            return self._lambda(route, event, request_id)
        params = {"path": path_params, "querystring": {k: v[-1] for k, v in query.items()}, "header": single}
        try:
            return self._service(route, method, lower, body, params, context, request_id)
        except TemplateError as exc:
            self.problems.append(f"{method} {route.path}: {exc}")
            return self.gateway_response(api, "API_CONFIGURATION_ERROR", request_id)

    # -- integrations --------------------------------------------------------------------------------------------

    def _lambda(self, route: Route, event: dict[str, Any], request_id: str) -> Reply:
        assert route.function is not None
        done = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["result"] = self.invoke(route.function, event)
            except Exception as exc:  # the stack's own failure: answered like a Lambda service error
                box["exception"] = exc
            done.set()

        started = time.monotonic()
        threading.Thread(target=run, daemon=True, name=f"apigw-{request_id[:8]}").start()
        if not done.wait(route.timeout_ms / 1000):
            self._report(route, request_id, started, f"504 integration timeout (TimeoutInMillis {route.timeout_ms}; "
                                                     "the function keeps running)")
            return self.gateway_response(route.api, "INTEGRATION_TIMEOUT", request_id)
        result = box.get("result")
        if result is None or not result.ok:
            why = f"the stack could not invoke it: {box.get('exception')}" if result is None else \
                str(result.error.get("errorType"))
            self._report(route, request_id, started, f"502 integration failure ({why})")
            return self.gateway_response(route.api, "INTEGRATION_FAILURE", request_id)
        reply = proxy_reply(result.payload)
        if reply is None:
            return self.gateway_response(route.api, "INTEGRATION_FAILURE", request_id)
        reply.headers.setdefault("x-amzn-RequestId", [request_id])
        reply.headers.setdefault("x-amz-apigw-id", [_apigw_id()])
        return reply

    def _report(self, route: Route, request_id: str, started: float, what: str) -> None:
        """One line for every request API Gateway answered with a 5xx of its own, under the function's name."""
        if self.log_sink is not None and route.function is not None:
            self.log_sink(route.function, f"[local] API Gateway {route.method} {route.path}: {what}; waited "
                                          f"{time.monotonic() - started:.2f} s; request {request_id}")

    def _service(self, route: Route, method: str, lower: dict[str, str], body: bytes,
                 params: dict[str, dict[str, str]], context: dict[str, Any], request_id: str) -> Reply:
        integration = route.integration
        content_type = (lower.get("content-type") or "application/json").split(";")[0].strip().lower()
        templates = integration.get("requestTemplates") or {}
        text = body.decode("utf-8", errors="replace")
        passthrough = str(integration.get("passthroughBehavior", "when_no_match")).lower()
        if content_type in templates:
            rendered = render(templates[content_type], body=text, params=params, context=context,
                              stage_variables=route.api.stage_variables)
        elif passthrough == "never" or (passthrough == "when_no_templates" and templates):
            return self.gateway_response(route.api, "UNSUPPORTED_MEDIA_TYPE", request_id)
        else:
            rendered = text
        if route.kind == "mock":
            try:
                status = int(json.loads(rendered or "{}").get("statusCode", 200))
            except (ValueError, AttributeError):
                status = 200
            integration_status, integration_body = status, ""
        else:
            integration_status, integration_body = self._send_to_sqs(route, rendered, request_id)
        return self._integration_response(route, integration_status, integration_body, params, context)

    def _send_to_sqs(self, route: Route, form: str, request_id: str) -> tuple[int, str]:
        """SQS's query API, as API Gateway calls it: SendMessage from the rendered form; SQS's JSON answer."""
        uri = str(route.integration.get("uri", ""))
        fields = {k: v[-1] for k, v in urllib.parse.parse_qs(form, keep_blank_values=True).items()}
        action = fields.get("Action") or (uri.rsplit("action/", 1)[-1] if "action/" in uri else "")
        sqs = self.sqs_client()
        if "path/" in uri:
            account, queue_name = uri.split("path/", 1)[1].split("/", 1)
            queue_url = sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        else:
            queue_url = fields.get("QueueUrl", "")
        if action != "SendMessage":
            return 400, json.dumps({"Error": {"Code": "InvalidAction", "Message": f"{action} is not emulated "
                                              "locally (SendMessage is)", "Type": "Sender"}, "RequestId": request_id})
        attributes: dict[str, Any] = {}
        for key, value in fields.items():
            m = re.fullmatch(r"MessageAttribute\.(\d+)\.Name", key)
            if m:
                n = m.group(1)
                data_type = fields.get(f"MessageAttribute.{n}.Value.DataType", "String")
                attr: dict[str, Any] = {"DataType": data_type}
                if f"MessageAttribute.{n}.Value.BinaryValue" in fields:
                    attr["BinaryValue"] = base64.b64decode(fields[f"MessageAttribute.{n}.Value.BinaryValue"])
                else:
                    attr["StringValue"] = fields.get(f"MessageAttribute.{n}.Value.StringValue", "")
                attributes[value] = attr
        kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": fields.get("MessageBody", "")}
        if attributes:
            kwargs["MessageAttributes"] = attributes
        for key in ("DelaySeconds", "MessageGroupId", "MessageDeduplicationId"):
            if key in fields:
                kwargs[key] = int(fields[key]) if key == "DelaySeconds" else fields[key]
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            sent = sqs.send_message(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)), json.dumps(
                {"Error": {"Code": error.get("Code"), "Message": error.get("Message"), "Type": "Sender"},
                 "RequestId": request_id})
        except BotoCoreError as exc:
            return 500, json.dumps({"Error": {"Code": "ServiceUnavailable", "Message": str(exc)}})
        result = {k: sent[k] for k in ("MD5OfMessageBody", "MD5OfMessageAttributes", "MessageId", "SequenceNumber")
                  if k in sent}
        return 200, json.dumps({"SendMessageResponse": {"ResponseMetadata": {"RequestId": request_id},
                                                        "SendMessageResult": result}})

    def _integration_response(self, route: Route, status: int, body: str, params: dict[str, dict[str, str]],
                              context: dict[str, Any]) -> Reply:
        responses = route.integration.get("responses") or {}
        chosen = None
        for pattern, response in responses.items():
            if pattern != "default" and re.fullmatch(str(pattern), str(status)):
                chosen = response
                break
        if chosen is None:
            chosen = responses.get("default") or {"statusCode": str(status)}
        templates = chosen.get("responseTemplates") or {}
        content_type, template = next(iter(templates.items()), ("application/json", None))
        out = render(template, body=body, params=params, context=context,
                     stage_variables=route.api.stage_variables) if template else body
        headers = {"Content-Type": [content_type], "x-amzn-RequestId": [context["requestId"]],
                   "x-amz-apigw-id": [_apigw_id()]}
        for key, value in (chosen.get("responseParameters") or {}).items():
            if key.startswith("method.response.header."):
                name = key.split("method.response.header.", 1)[1]
                if isinstance(value, str) and value.startswith("'"):
                    headers[name] = [value.strip("'")]
        return Reply(int(chosen.get("statusCode", status)), headers, out.encode())

    # -- API Gateway's own answers -----------------------------------------------------------------------------

    def gateway_response(self, api: RestApi | None, response_type: str, request_id: str, message: str | None = None,
                         validation: str = "") -> Reply:
        status, default_message, error_type = RESPONSE_TYPES[response_type]
        if response_type == "INCOMPLETE_SIGNATURE" and message is None:
            message = "Authorization header requires 'Credential' parameter."
        message = message or default_message or ""
        if response_type == "BAD_REQUEST_BODY" and not message:
            message = "Invalid request body"
        configured = gateway_responses(api) if api is not None else {}
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        config = configured.get(response_type) or configured.get(family) or {}
        status = int(config.get("statusCode", status))
        headers = {"Content-Type": ["application/json"], "x-amzn-RequestId": [request_id],
                   "x-amzn-ErrorType": [error_type]}
        for name, value in (config.get("headers") or {}).items():
            headers[name] = [str(value).strip("'")]
        template = (config.get("templates") or {}).get("application/json")
        body = json.dumps({"message": message})
        if template:
            context = {"requestId": request_id, "error": {
                "message": message, "messageString": json.dumps(message), "responseType": response_type,
                "validationErrorString": validation}}
            try:
                body = render_gateway_response(template, context, api.stage_variables if api else None)
            except TemplateError as exc:
                self.problems.append(f"gateway response {response_type}: {exc}")
        return Reply(status, headers, body.encode())


# -- helpers ----------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """One thread per connection, a backlog sized for the concurrency target."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A caller that hung up before its answer is one line, not a traceback; anything else as before."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            print(f"[local] API Gateway: the caller {client_address[0]}:{client_address[1]} closed the connection "
                  f"before its answer ({type(error).__name__})", file=sys.stderr, flush=True)
            return
        super().handle_error(request, client_address)


def gateway_responses(api: RestApi) -> dict[str, dict[str, Any]]:
    """{type: {"statusCode", "templates", "headers"}} from the Body's x-amazon-apigateway-gateway-responses."""
    out: dict[str, dict[str, Any]] = {}
    for name, config in ((api.definition or {}).get("x-amazon-apigateway-gateway-responses") or {}).items():
        headers = {k.split("gatewayresponse.header.", 1)[1]: v
                   for k, v in (config.get("responseParameters") or {}).items()
                   if k.startswith("gatewayresponse.header.")}
        entry = {"templates": config.get("responseTemplates") or {}, "headers": headers}
        if "statusCode" in config:
            entry["statusCode"] = config["statusCode"]
        out[name] = entry
    return out


def sigv4_problem(lower_headers: dict[str, str]) -> str | None:
    """None if the request carries a well-formed SigV4 Authorization header (not verified), else why not."""
    auth = lower_headers.get("authorization")
    if not auth:
        return "missing"
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return f"Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' " \
               f"parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=" \
               f"{auth.split(' ', 1)[0]}"
    missing = [p for p in ("Credential", "Signature", "SignedHeaders") if f"{p}=" not in auth]
    if missing:
        return " ".join(f"Authorization header requires '{p}' parameter." for p in missing)
    if "x-amz-date" not in lower_headers and "date" not in lower_headers:
        return "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    return None


def request_context(route: Route, method: str, path: str, request_id: str, identity: dict[str, Any]
                    ) -> dict[str, Any]:
    now = datetime.now(UTC)
    base_identity = {"cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None, "caller": None,
                     "sourceIp": "127.0.0.1", "principalOrgId": None, "accessKey": None,
                     "cognitoAuthenticationType": None, "cognitoAuthenticationProvider": None, "userArn": None,
                     "userAgent": None, "user": None, "apiKey": None, "apiKeyId": None}
    return {
        "resourceId": hashlib.sha1(route.path.encode()).hexdigest()[:6],  # noqa: S324 - an id, not security
        "resourcePath": route.path, "httpMethod": method, "extendedRequestId": _apigw_id(),
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"), "path": f"/{route.api.stage}{path}",
        "accountId": ACCOUNT_ID, "protocol": "HTTP/1.1", "stage": route.api.stage, "domainPrefix": route.api.id,
        "requestTimeEpoch": int(now.timestamp() * 1000), "requestId": request_id,
        "identity": {**base_identity, **identity},
        "domainName": f"{route.api.id}.execute-api.{REGION}.amazonaws.com", "apiId": route.api.id,
    }


def proxy_event(route: Route, method: str, path: str, path_params: dict[str, str], query: dict[str, list[str]],
                headers: dict[str, list[str]], body: bytes, context: dict[str, Any]) -> dict[str, Any]:
    """The Lambda proxy integration's event (payload format 1.0)."""
    declared = route.api.properties.get("BinaryMediaTypes") or \
        (route.api.definition or {}).get("x-amazon-apigateway-binary-media-types") or []
    binary_types = [str(t).replace("~1", "/") for t in declared]
    content_type = next((v[-1] for k, v in headers.items() if k.lower() == "content-type"), "")
    is_binary = any(_media_match(t, content_type) for t in binary_types)
    text: str | None = None
    if body and not is_binary:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            is_binary = True
    return {
        "resource": route.path, "path": path, "httpMethod": method,
        "headers": {k: v[-1] for k, v in headers.items()} or None,
        "multiValueHeaders": {k: list(v) for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": {k: list(v) for k, v in query.items()} or None,
        "pathParameters": path_params or None, "stageVariables": route.api.stage_variables or None,
        "requestContext": context,
        "body": base64.b64encode(body).decode() if body and is_binary else text,
        "isBase64Encoded": bool(body) and is_binary,
    }


def proxy_reply(payload: Any) -> Reply | None:
    """A Lambda proxy response mapped to HTTP; None when it is malformed (API Gateway then answers 502)."""
    if not isinstance(payload, dict):
        return None
    try:
        status = int(payload.get("statusCode", 200))
    except (TypeError, ValueError):
        return None
    headers: dict[str, list[str]] = {}
    for name, value in (payload.get("headers") or {}).items():
        headers[name] = [str(value)]
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            return None
        headers.setdefault(name, [])
        headers[name] += [str(v) for v in values if str(v) not in headers[name]]
    body = payload.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        return None
    elif payload.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body)
        except ValueError:
            return None
    else:
        data = body.encode("utf-8")
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = ["application/json"]
    return Reply(status, headers, data)


def validate_body(schema: dict[str, Any], body: bytes) -> list[str]:
    """API Gateway's request validation (JSON Schema draft 4), with messages in its style."""
    import jsonschema

    try:
        document = json.loads(body.decode("utf-8")) if body else None
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"Invalid JSON in request body: {exc}"]
    if document is None:
        return ["Request body is missing"]
    messages = []
    for error in sorted(jsonschema.Draft4Validator(schema).iter_errors(document), key=lambda e: list(e.path)):
        where = "/" + "/".join(str(p) for p in error.path)
        if error.validator == "required":
            missing = [r for r in error.validator_value if isinstance(error.instance, dict) and r not in error.instance]
            messages.append(f"object has missing required properties ({json.dumps(missing)})")
        elif error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            messages.append(f"object instance has properties which are not allowed by the schema: {json.dumps(extra)}")
        elif error.validator == "pattern":
            messages.append(f"ECMA 262 regex \"{error.validator_value}\" does not match input string "
                            f"{json.dumps(error.instance)} at {where}")
        elif error.validator == "type":
            allowed = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            messages.append(f"instance type ({_json_type(error.instance)}) does not match any allowed primitive type "
                            f"(allowed: {json.dumps(allowed)}) at {where}")
        else:
            messages.append(f"{error.message} at {where}")
    return messages


def _body_schema(op: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any] | None:
    content = ((op.get("requestBody") or {}).get("content")) or {}
    schema = (content.get("application/json") or next(iter(content.values()), {})).get("schema")
    if schema is None:
        for param in op.get("parameters") or []:
            if param.get("in") == "body":
                schema = param.get("schema")
    if schema is None:
        return None
    return _inline_refs(schema, doc)


def _inline_refs(node: Any, doc: dict[str, Any], depth: int = 0) -> Any:
    if depth > 20:
        return node
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = doc
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            return _inline_refs(target, doc, depth + 1)
        return {k: _inline_refs(v, doc, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, doc, depth + 1) for v in node]
    return node


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value),
                                                                                                  "unknown")


def _media_match(pattern: str, content_type: str) -> bool:
    if not content_type:
        return False
    ct = content_type.split(";")[0].strip().lower()
    return pattern == "*/*" or pattern.lower() == ct or (pattern.endswith("/*") and ct.startswith(pattern[:-1]))


def _apigw_id() -> str:
    return base64.b64encode(secrets.token_bytes(12)).decode()[:16]


def sign_headers(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> dict[str, str]:
    """SigV4 headers for a request with the local (fake) credentials, as a Salesforce Named Credential sends."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials("AKIALOCALEXAMPLE", "local-secret"), "execute-api", REGION).add_auth(request)
    return {k: v for k, v in request.headers.items()}


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def api_path_regex(path: str) -> re.Pattern[str]:
    """/products/{sku}/availability -> a regex with named groups; {proxy+} matches the rest of the path."""
    parts = []
    for segment in path.strip("/").split("/"):
        m = re.fullmatch(r"\{([A-Za-z0-9_.-]+?)(\+)?\}", segment)
        if m:
            parts.append(f"(?P<{_group(m.group(1))}>.+)" if m.group(2) else f"(?P<{_group(m.group(1))}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?$") if parts != [""] else re.compile("^/$")


def _group(name: str) -> str:
    return "p_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
