"""The subset of API Gateway's mapping-template language (Velocity) that direct service integrations use.

References only: ``$input.body``, ``$input.json('$.x')``, ``$input.path('$.x')``, ``$input.params('name')``,
``$util.urlEncode/urlDecode/escapeJavaScript/base64Encode/base64Decode(...)``, ``$context.a.b`` and
``$stageVariables.x``, with the ``${...}`` and quiet ``$!`` forms. Written by hand because no maintained
Python library renders API Gateway's templates; directives (#set, #if, #foreach) raise `TemplateError`
so that a template this cannot render fails loudly instead of producing something else.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


class TemplateError(Exception):
    """The template uses something outside the supported subset."""


@dataclass
class Input:
    body: str
    params: dict[str, dict[str, str]] = field(default_factory=dict)  # {"path": {...}, "querystring": ..., "header"}

    def parsed(self) -> Any:
        try:
            return json.loads(self.body) if self.body else {}
        except ValueError:
            raise TemplateError("$input.path/$input.json need a JSON body") from None

    def json(self, path: str) -> str:
        return json.dumps(json_path(self.parsed(), path))

    def path(self, path: str) -> Any:
        return json_path(self.parsed(), path)

    def param(self, name: str) -> str:
        for where in ("path", "querystring", "header"):
            values = self.params.get(where, {})
            if where == "header":
                values = {k.lower(): v for k, v in values.items()}
                name_key = name.lower()
            else:
                name_key = name
            if name_key in values:
                return values[name_key]
        return ""


def json_path(document: Any, path: str) -> Any:
    """$, $.a.b, $.a[0], $['a'] over a parsed JSON document; None where nothing is found."""
    if not path.startswith("$"):
        raise TemplateError(f"unsupported JSONPath {path!r}")
    value = document
    for m in re.finditer(r"\.([A-Za-z0-9_$-]+)|\[(\d+)\]|\['([^']+)'\]|\[\"([^\"]+)\"\]", path[1:]):
        key = m.group(1) or m.group(3) or m.group(4)
        if key is not None:
            value = value.get(key) if isinstance(value, dict) else None
        else:
            index = int(m.group(2))
            value = value[index] if isinstance(value, list) and index < len(value) else None
    return value


_UTIL = {
    "urlEncode": lambda s: urllib.parse.quote_plus(str(s)),
    "urlDecode": lambda s: urllib.parse.unquote_plus(str(s)),
    "escapeJavaScript": lambda s: json.dumps(str(s))[1:-1].replace("'", "\\'"),
    "base64Encode": lambda s: base64.b64encode(str(s).encode()).decode(),
    "base64Decode": lambda s: base64.b64decode(str(s)).decode(),
}


def render(template: str, input_: Input, context: dict[str, Any], stage_variables: dict[str, str] | None = None
           ) -> str:
    if re.search(r"(^|[^\\])#(set|if|foreach|else|end|macro|define)\b", template):
        raise TemplateError("mapping-template directives (#set, #if, #foreach ...) are not supported locally")
    return _Renderer(template, input_, context, stage_variables or {}).run()


class _Renderer:
    def __init__(self, text: str, input_: Input, context: dict[str, Any], stage_variables: dict[str, str]):
        self.text = text
        self.pos = 0
        self.input = input_
        self.context = context
        self.stage_variables = stage_variables

    def run(self) -> str:
        out = []
        while self.pos < len(self.text):
            start = self.text.find("$", self.pos)
            if start < 0:
                out.append(self.text[self.pos:])
                break
            out.append(self.text[self.pos:start])
            self.pos = start
            literal_end, value = self._reference()
            if literal_end is not None:  # not a reference: a lone "$"
                out.append(self.text[start:literal_end])
                self.pos = literal_end
            else:
                out.append(_to_text(value))
        return "".join(out)

    def _reference(self) -> tuple[int | None, Any]:
        text, i = self.text, self.pos + 1
        quiet = i < len(text) and text[i] == "!"
        if quiet:
            i += 1
        braced = i < len(text) and text[i] == "{"
        if braced:
            i += 1
        m = re.compile(r"[A-Za-z][A-Za-z0-9_]*").match(text, i)
        if not m:
            return i, None
        self.pos = m.end()
        value = self._chain(m.group(0))
        if braced:
            if not text.startswith("}", self.pos):
                raise TemplateError(f"unclosed ${{...}} at {self.pos}")
            self.pos += 1
        if value is None and not quiet:
            return None, ""
        return None, "" if value is None else value

    def _chain(self, root: str) -> Any:
        value: Any = {"input": _InputRef(self.input), "util": _UtilRef(), "context": self.context,
                      "stageVariables": self.stage_variables}.get(root)
        if value is None:
            raise TemplateError(f"unknown variable ${root}")
        text = self.text
        while self.pos < len(text) and text[self.pos] == ".":
            m = re.compile(r"\.([A-Za-z][A-Za-z0-9_]*)").match(text, self.pos)
            if not m:
                break
            self.pos = m.end()
            name = m.group(1)
            if self.pos < len(text) and text[self.pos] == "(":
                args = self._args()
                value = _call(value, name, args)
            elif isinstance(value, _InputRef) and name == "body":
                value = self.input.body
            elif isinstance(value, dict):
                value = value.get(name)
            else:
                raise TemplateError(f"unsupported reference .{name}")
        return value

    def _args(self) -> list[Any]:
        text = self.text
        self.pos += 1  # "("
        args: list[Any] = []
        while True:
            while self.pos < len(text) and text[self.pos] in " ,":
                self.pos += 1
            if self.pos >= len(text):
                raise TemplateError("unclosed (")
            if text[self.pos] == ")":
                self.pos += 1
                return args
            if text[self.pos] in "'\"":
                quote = text[self.pos]
                end = text.index(quote, self.pos + 1)
                args.append(text[self.pos + 1:end])
                self.pos = end + 1
            elif text[self.pos] == "$":
                end, value = self._reference()
                if end is not None:
                    raise TemplateError("bad argument")
                args.append(value)
            else:
                raise TemplateError(f"unsupported argument at {text[self.pos:self.pos + 20]!r}")


class _InputRef:
    def __init__(self, input_: Input):
        self.input = input_


class _UtilRef:
    pass


def _call(target: Any, name: str, args: list[Any]) -> Any:
    if isinstance(target, _InputRef):
        if name == "json":
            return target.input.json(args[0] if args else "$")
        if name == "path":
            return target.input.path(args[0] if args else "$")
        if name == "params" and args:
            return target.input.param(str(args[0]))
    if isinstance(target, _UtilRef) and name in _UTIL:
        return _UTIL[name](args[0] if args else "")
    raise TemplateError(f"unsupported method {name}()")


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
