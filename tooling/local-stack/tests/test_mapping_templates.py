"""Every mapping template of the real template.yaml, rendered by the stack's engine (airspeed with API Gateway's
$input/$util/$context) with awkward input: gateway responses are the one JSON error envelope whatever the
message holds, the SQS request templates carry the body verbatim, the response templates read SQS's answer."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from local.stack.mapping import render, render_gateway_response
from local.stack.services import load_wiring
from local.stack.template import read_template

from .conftest import ROOT

AWKWARD = ['Invalid request body', 'a "quoted" word', "it's", "back\\slash", "line\nbreak\ttab", "ünïcødé €",
           "</script>&<b>", "[object has missing required properties ([\"quantity\"])]"]


def _documents() -> dict[str, dict[str, Any]]:
    model = read_template(ROOT / "template.yaml")
    parameters = {k: v.replace("{", "x-").replace("}", "") for k, v in load_wiring()["parameters"].items()
                  if k in model.parameters}
    model = read_template(ROOT / "template.yaml", parameters)
    return {api.logical_id: model.evaluate(api.definition, api.logical_id) for api in model.apis.values()
            if api.definition}


DOCUMENTS = _documents()
GATEWAY_RESPONSES = [(api, kind, template) for api, doc in DOCUMENTS.items()
                     for kind, config in (doc.get("x-amazon-apigateway-gateway-responses") or {}).items()
                     for template in (config.get("responseTemplates") or {}).values()]
INTEGRATIONS = [(api, f"{method.upper()} {path}", op["x-amazon-apigateway-integration"])
                for api, doc in DOCUMENTS.items() for path, item in (doc.get("paths") or {}).items()
                for method, op in item.items() if isinstance(op, dict) and "x-amazon-apigateway-integration" in op]
SQS_INTEGRATIONS = [(api, route, integration) for api, route, integration in INTEGRATIONS
                    if integration.get("type") == "aws" and ":sqs:" in integration.get("uri", "")]


def test_the_template_has_mapping_templates_to_check():
    assert GATEWAY_RESPONSES
    assert SQS_INTEGRATIONS


@pytest.mark.parametrize(("api", "kind", "template"), GATEWAY_RESPONSES,
                         ids=[f"{api}-{kind}" for api, kind, _ in GATEWAY_RESPONSES])
@pytest.mark.parametrize("message", AWKWARD)
def test_every_gateway_response_is_the_json_error_envelope_whatever_the_message(api, kind, template, message):
    context = {"requestId": "req-1", "error": {
        "message": message, "messageString": json.dumps(message), "responseType": kind,
        "validationErrorString": message}}
    out = json.loads(render_gateway_response(template, context))
    assert isinstance(out, dict), out
    assert isinstance(out.get("error"), str)
    assert out["error"], out
    assert out.get("message") == message, f"{api} {kind}: {out}"


@pytest.mark.parametrize(("api", "route", "integration"), SQS_INTEGRATIONS,
                         ids=[f"{api}-{route}" for api, route, _ in SQS_INTEGRATIONS])
@pytest.mark.parametrize("body", ['{"contract_id": "800000000000001AAA"}',
                                  '{"note": "a&b=c+d %20 ünï \\"q\\" \'s"}', ""])
def test_every_sqs_request_template_sends_the_body_verbatim(api, route, integration, body):
    for template in (integration.get("requestTemplates") or {}).values():
        form = urllib.parse.parse_qs(render(template, body=body, context={"requestId": "req-1"}),
                                     keep_blank_values=True)
        assert form["Action"] == ["SendMessage"], f"{api} {route}"
        assert form["MessageBody"] == [body], f"{api} {route}"


@pytest.mark.parametrize(("api", "route", "integration"), SQS_INTEGRATIONS,
                         ids=[f"{api}-{route}" for api, route, _ in SQS_INTEGRATIONS])
def test_every_sqs_response_template_answers_json(api, route, integration):
    answer = json.dumps({"SendMessageResponse": {"ResponseMetadata": {"RequestId": "r"},
                                                 "SendMessageResult": {"MessageId": "m-1"}}})
    for status, response in (integration.get("responses") or {}).items():
        for template in (response.get("responseTemplates") or {}).values():
            out = json.loads(render(template, body=answer, context={"requestId": "req-1"}))
            assert isinstance(out, dict), f"{api} {route} {status}: {out}"
            if status.startswith("2"):
                assert out == {"message_id": "m-1"}
            else:
                assert set(out) >= {"error", "message"}, f"{api} {route} {status}: {out}"
