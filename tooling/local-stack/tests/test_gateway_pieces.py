"""API Gateway emulation pieces: mapping templates (airspeed, with API Gateway's $input/$util/$context), request
validation, SigV4 header checks, proxy replies."""

from __future__ import annotations

import json

import pytest

from local.stack.apigw import proxy_reply, sigv4_problem, validate_body
from local.stack.mapping import TemplateError, render, render_gateway_response

SCHEMA = {"type": "object", "required": ["sku", "quantity"], "additionalProperties": False,
          "properties": {"sku": {"type": "string", "pattern": "^SKU-[0-9]+$"}, "quantity": {"type": "integer"}}}


def test_sqs_request_template_url_encodes_the_body_and_adds_the_request_id():
    template = ("Action=SendMessage&MessageBody=$util.urlEncode($input.body)"
                "&MessageAttribute.1.Value.StringValue=$context.requestId")
    out = render(template, body='{"a": "b&c"}', context={"requestId": "req-1"})
    assert out == ("Action=SendMessage&MessageBody=%7B%22a%22%3A+%22b%26c%22%7D"
                   "&MessageAttribute.1.Value.StringValue=req-1")


def test_response_template_reads_the_integration_answer_with_json_path():
    answer = json.dumps({"SendMessageResponse": {"SendMessageResult": {"MessageId": "m-1"}}})
    out = render("""{"id": "$input.path('$.SendMessageResponse.SendMessageResult.MessageId')", """
                 """"all": $input.json('$.SendMessageResponse')}""", body=answer)
    assert json.loads(out) == {"id": "m-1", "all": {"SendMessageResult": {"MessageId": "m-1"}}}


def test_gateway_response_template_with_quiet_and_braced_references():
    context = {"error": {"responseType": "BAD_REQUEST_BODY", "messageString": '"Invalid request body"'}}
    template = '{"code": "${context.error.responseType}", "message": $context.error.messageString$!context.error.x}'
    out = render_gateway_response(template, context)
    assert json.loads(out) == {"code": "BAD_REQUEST_BODY", "message": "Invalid request body"}
    assert render_gateway_response("[$util.escapeJavaScript('x')][$input.body]", context) == "[][]"  # not theirs


def test_params_escape_and_base64():
    params = {"path": {"id": "7"}, "querystring": {"q": "x"}, "header": {"X-Thing": "it's"}}
    assert render("$input.params('id')/$input.params('q')/$util.escapeJavaScript($input.params('x-thing'))",
                  params=params) == "7/x/it\\'s"
    assert render("$util.base64Encode('hi')/$util.base64Decode('aGk=')") == "aGk=/hi"
    assert render("$util.urlEncode('a b~*')/$util.urlDecode('a+b%7E')") == "a+b%7E*/a b~"
    assert render("#foreach($name in $input.params().path.keySet())$name=$input.params().path.get($name)#end",
                  params=params) == "id=7"


def test_escape_javascript_makes_a_json_string_of_any_text():
    text = 'say "hi"\\ \n\t and ünïcode'
    out = render('{"message": "$util.escapeJavaScript($context.error.message)"}',
                 context={"error": {"message": text}})
    assert json.loads(out) == {"message": text}
    # A single quote is escaped as API Gateway does (\' is not JSON); its documented fix-up makes it JSON again.
    quoted = render("""{"message": "$util.escapeJavaScript($context.m).replaceAll("\\\\'", "'")"}""",
                    context={"m": "it's"})
    assert json.loads(quoted) == {"message": "it's"}


def test_velocity_directives_render_like_api_gateway():
    template = ('#set($order = $util.parseJson($input.body))'
                '#if($order.lines.size() > 1)many#else$order.lines[0].sku#end'
                '#foreach($line in $order.lines),$line.quantity#end')
    assert render(template, body='{"lines": [{"sku": "SKU-1", "quantity": 2}]}') == "SKU-1,2"
    assert render(template, body='{"lines": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 3}]}') == \
        "many,1,3"
    assert render("$input.path('$.lines[1].sku')|$input.json('$.lines[0]')",
                  body='{"lines": [{"sku": "a"}, {"sku": "b"}]}') == 'b|{"sku": "a"}'
    assert render("[$unknown.thing][$!quiet]") == "[][]"  # API Gateway renders what is missing as nothing


@pytest.mark.parametrize(("template", "body"), [("#if($input.body)yes", "{}"), ("$input.path('$.a')", "not json"),
                                                ("$util.parseJson($input.body)", "not json")])
def test_what_does_not_render_fails_loudly(template, body):
    with pytest.raises(TemplateError):
        render(template, body=body)


def test_valid_body_passes_validation():
    assert validate_body(SCHEMA, b'{"sku": "SKU-1", "quantity": 2}') == []


def test_validation_names_what_is_wrong_like_api_gateway():
    errors = validate_body(SCHEMA, b'{"sku": "nope", "extra": 1}')
    assert 'object has missing required properties (["quantity"])' in errors
    assert 'object instance has properties which are not allowed by the schema: ["extra"]' in errors
    assert any(e.startswith('ECMA 262 regex "^SKU-[0-9]+$" does not match input string "nope"') for e in errors)
    assert validate_body(SCHEMA, b'{"sku": "SKU-1", "quantity": "2"}') == [
        'instance type (string) does not match any allowed primitive type (allowed: ["integer"]) at /quantity']
    assert validate_body(SCHEMA, b"{not json")[0].startswith("Invalid JSON in request body")
    assert validate_body(SCHEMA, b"") == ["Request body is missing"]


SIGNED = ("AWS4-HMAC-SHA256 Credential=AKIA/20250101/eu-west-1/execute-api/aws4_request, "
          "SignedHeaders=host;x-amz-date, Signature=abc")


@pytest.mark.parametrize(("headers", "problem"), [
    ({}, "missing"),
    ({"authorization": "Bearer token"}, "Authorization header requires 'Credential' parameter"),
    ({"authorization": "AWS4-HMAC-SHA256 Credential=AKIA/x", "x-amz-date": "20250101T000000Z"},
     "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders'"),
    ({"authorization": SIGNED}, "requires existence of either a 'X-Amz-Date' or a 'Date' header"),
])
def test_malformed_sigv4_headers_are_refused(headers, problem):
    found = sigv4_problem(headers)
    assert found is not None
    assert problem in found


def test_a_well_formed_sigv4_header_is_accepted_without_verifying_the_signature():
    assert sigv4_problem({"authorization": SIGNED, "x-amz-date": "20250101T000000Z"}) is None


def test_proxy_reply_maps_status_headers_and_base64_body():
    reply = proxy_reply({"statusCode": 201, "headers": {"X-A": "1"}, "multiValueHeaders": {"Set-Cookie": ["a", "b"]},
                         "body": "aGk=", "isBase64Encoded": True})
    assert reply is not None
    assert (reply.status, reply.body) == (201, b"hi")
    assert reply.headers["X-A"] == ["1"]
    assert reply.headers["Set-Cookie"] == ["a", "b"]
    assert reply.headers["Content-Type"] == ["application/json"]


@pytest.mark.parametrize("payload", [None, "text", {"statusCode": "abc"}, {"statusCode": 200, "body": {"a": 1}},
                                     {"statusCode": 200, "multiValueHeaders": {"X": "not-a-list"}}])
def test_malformed_proxy_replies_are_rejected(payload):
    assert proxy_reply(payload) is None
