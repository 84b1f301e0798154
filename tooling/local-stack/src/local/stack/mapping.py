"""API Gateway mapping templates (integration request/response templates, gateway responses), rendered by
airspeed-ext, the Velocity engine LocalStack renders them with.

Velocity itself (references, #set, #if, #foreach, macros, string methods) is airspeed's. What API Gateway adds
is written here (no Python library provides it outside LocalStack's platform), as its mapping-template
reference documents it: ``$input`` (body, json, path, params),
``$util`` (escapeJavaScript, parseJson, urlEncode, urlDecode, base64Encode, base64Decode), ``$context`` (the
request context, and ``error`` in gateway responses) and ``$stageVariables``. JSONPath is jsonpath-ng's.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from typing import Any

import airspeed
import jsonpath_ng
import jsonpath_ng.exceptions


class TemplateError(Exception):
    """The template does not render (a Velocity syntax error, or a JSONPath over a body that is not JSON)."""


class MappingInput:
    """``$input``: the request's (or the integration answer's) payload and the method request's parameters."""

    def __init__(self, body: str, params: dict[str, dict[str, str]] | None = None):
        self.body = body
        self._params = {"path": {}, "querystring": {}, "header": {}, **(params or {})}

    def _document(self) -> Any:
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise TemplateError("$input.path and $input.json need a JSON payload") from None

    def path(self, expression: str = "$") -> Any:
        """The JSONPath's value as an object (a list when the path matches several)."""
        try:
            matches = [m.value for m in jsonpath_ng.parse(str(expression)).find(self._document())]
        except (jsonpath_ng.exceptions.JsonPathParserError, jsonpath_ng.exceptions.JsonPathLexerError) as exc:
            raise TemplateError(f"JSONPath {expression!r}: {exc}") from None
        if not matches:
            return None
        return matches[0] if len(matches) == 1 else matches

    def json(self, expression: str = "$") -> str:
        """The JSONPath's value as JSON text."""
        return json.dumps(self.path(expression))

    def params(self, name: str | None = None) -> Any:
        """All parameters ({"path", "querystring", "header"}), or one by name: path first, then the query
        string, then the headers (headers by any case)."""
        if name is None:
            return self._params
        for where in ("path", "querystring"):
            if name in self._params[where]:
                return self._params[where][name]
        headers = {k.lower(): v for k, v in self._params["header"].items()}
        return headers.get(str(name).lower(), "")


class MappingUtil:
    """``$util``."""

    @staticmethod
    def escapeJavaScript(value: Any) -> str:
        """JavaScript string escaping; a single quote becomes \\' (not valid JSON: API Gateway's own advice is
        ``.replaceAll("\\\\'", "'")`` where the result goes into JSON)."""
        if value is None:
            return ""
        text = value if isinstance(value, str) else json.dumps(value)
        return json.dumps(text)[1:-1].replace("'", "\\'")

    @staticmethod
    def parseJson(text: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            raise TemplateError("$util.parseJson: the argument is not JSON") from None

    @staticmethod
    def urlEncode(value: Any) -> str:
        """application/x-www-form-urlencoded, as Java's URLEncoder writes it (space as +, * kept, ~ encoded)."""
        return urllib.parse.quote_plus("" if value is None else str(value), safe="*").replace("~", "%7E")

    @staticmethod
    def urlDecode(value: Any) -> str:
        return urllib.parse.unquote_plus("" if value is None else str(value))

    @staticmethod
    def base64Encode(value: Any) -> str:
        return base64.b64encode(("" if value is None else str(value)).encode("utf-8")).decode("ascii")

    @staticmethod
    def base64Decode(value: Any) -> str:
        return base64.b64decode("" if value is None else str(value)).decode("utf-8", errors="replace")


def render_gateway_response(template: str, context: dict[str, Any],
                            stage_variables: dict[str, str] | None = None) -> str:
    """A gateway response's template, by the same engine with what API Gateway documents for them: ``$context``
    (with ``error``) and ``$stageVariables``; no ``$input`` or ``$util``, which render as nothing."""
    return _merge(template, {"context": context, "stageVariables": stage_variables or {}})


def render(template: str, *, body: str = "", params: dict[str, dict[str, str]] | None = None,
           context: dict[str, Any] | None = None, stage_variables: dict[str, str] | None = None) -> str:
    """The rendered template; `TemplateError` when it does not render."""
    return _merge(template, {"input": MappingInput(body, params), "util": MappingUtil(), "context": context or {},
                             "stageVariables": stage_variables or {}})


def _merge(template: str, namespace: dict[str, Any]) -> str:
    try:
        return str(airspeed.Template(template).merge(namespace))
    except airspeed.TemplateError as exc:
        cause = exc.__cause__
        raise TemplateError(str(cause) if isinstance(cause, TemplateError) else str(exc)) from None
