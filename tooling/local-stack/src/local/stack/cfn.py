"""CloudFormation's intrinsic functions, evaluated against local values.

Hand-written because no library serves: samtranslator leaves intrinsics for CloudFormation to resolve, and
the values they resolve to (moto's queue URLs, the stand-ins' URLs, generated secrets' ARNs) exist only in the
running local stack. What it needs is small: Ref, Fn::Sub, Fn::GetAtt, Fn::If and the condition functions,
Fn::Join/Select/Split/FindInMap/Base64/ToJsonString/Length/GetAZs, and the pseudo parameters. Anything else
raises `Unsupported` naming the construct and where it is. (YAML, short tags included, is read by
samtranslator's yaml_helper.)
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ACCOUNT_ID = "123456789012"  # moto's default account: ARNs built here and by moto agree
NO_VALUE = object()  # AWS::NoValue: the key or list item disappears


class Unsupported(Exception):
    """A construct the local stack cannot evaluate; the message says what and where."""


def intrinsic(value: Any) -> tuple[str, Any] | None:
    """("Ref", "X") for {"Ref": "X"}, ("Fn::Sub", ...) for {"Fn::Sub": ...}; None for anything else."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref" or key.startswith("Fn::") or key == "Condition":
            return key, arg
    return None


def referenced_logical_id(value: Any) -> str | None:
    """The resource a value points at: !Ref X, !GetAtt X.Arn, !Sub "${X.Arn}" or "${X}" alone."""
    fn = intrinsic(value)
    if fn is None:
        return None
    key, arg = fn
    if key == "Ref" and isinstance(arg, str):
        return arg
    if key == "Fn::GetAtt":
        parts = arg.split(".", 1) if isinstance(arg, str) else arg
        return str(parts[0])
    if key == "Fn::Sub":
        text = arg if isinstance(arg, str) else arg[0]
        m = re.fullmatch(r"\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}", text)
        if m:
            return m.group(1)
    return None


@dataclass
class Evaluator:
    """Evaluates intrinsic functions. `ref` and `getatt` give resources' local values (raise KeyError if unknown)."""

    parameters: dict[str, Any]
    conditions: dict[str, Any]
    mappings: dict[str, Any]
    ref: Callable[[str], Any]
    getatt: Callable[[str, str], Any]
    region: str = "eu-west-1"
    stack_name: str = "salesforce-integration"
    _condition_cache: dict[str, bool] = field(default_factory=dict)

    @property
    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{ACCOUNT_ID}:stack/{self.stack_name}/local",
            "AWS::NotificationARNs": [],  # type: ignore[dict-item]
        }

    def condition(self, name: str) -> bool:
        if name not in self._condition_cache:
            if name not in self.conditions:
                raise Unsupported(f"unknown condition {name!r}")
            self._condition_cache[name] = bool(self.evaluate(self.conditions[name], f"Conditions.{name}"))
        return self._condition_cache[name]

    def evaluate(self, value: Any, where: str = "") -> Any:
        """The value with every intrinsic function replaced by its local result; AWS::NoValue items removed."""
        fn = intrinsic(value)
        if fn is not None:
            return self._call(fn[0], fn[1], where)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                result = self.evaluate(item, f"{where}.{key}")
                if result is not NO_VALUE:
                    out[key] = result
            return out
        if isinstance(value, list):
            items = [self.evaluate(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return [item for item in items if item is not NO_VALUE]
        return value

    def _ref(self, name: str, where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        try:
            return self.ref(name)
        except KeyError:
            raise Unsupported(f"{where}: !Ref {name} names no parameter or resource with a local value") from None

    def _getatt(self, name: str, attribute: str, where: str) -> Any:
        try:
            return self.getatt(name, attribute)
        except KeyError:
            raise Unsupported(f"{where}: !GetAtt {name}.{attribute} has no local value") from None

    def _sub(self, arg: Any, where: str) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.evaluate(v, where) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def replace(m: re.Match[str]) -> str:
            token = m.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token:
                name, attribute = token.split(".", 1)
                if name not in self.parameters:
                    return str(self._getatt(name, attribute, where))
            value = self._ref(token, where)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def _call(self, key: str, arg: Any, where: str) -> Any:
        if key == "Ref":
            return self._ref(arg, where)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Sub":
            return self._sub(arg, where)
        if key == "Fn::GetAtt":
            name, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            return self._getatt(name, self.evaluate(attribute, where), where)
        if key == "Fn::If":
            name, if_true, if_false = arg
            return self.evaluate(if_true if self.condition(name) else if_false, where)
        if key == "Fn::Equals":
            a, b = (self.evaluate(x, where) for x in arg)
            return str(a) == str(b)
        if key == "Fn::Not":
            return not self.evaluate(arg[0], where)
        if key == "Fn::And":
            return all(self.evaluate(x, where) for x in arg)
        if key == "Fn::Or":
            return any(self.evaluate(x, where) for x in arg)
        if key == "Fn::Join":
            sep, items = arg
            return str(sep).join(str(x) for x in self.evaluate(items, where))
        if key == "Fn::Select":
            index, items = arg
            return self.evaluate(items, where)[int(self.evaluate(index, where))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.evaluate(text, where)).split(sep)
        if key == "Fn::FindInMap":
            name, top, second = (self.evaluate(x, where) for x in arg[:3])
            try:
                return self.mappings[name][top][second]
            except KeyError:
                raise Unsupported(f"{where}: !FindInMap {name}.{top}.{second} is not in Mappings") from None
        if key == "Fn::Base64":
            return base64.b64encode(str(self.evaluate(arg, where)).encode()).decode()
        if key == "Fn::ToJsonString":
            return json.dumps(self.evaluate(arg, where), separators=(",", ":"))
        if key == "Fn::GetAZs":
            return [f"{self.region}a", f"{self.region}b", f"{self.region}c"]
        if key == "Fn::Length":
            return len(self.evaluate(arg, where))
        raise Unsupported(f"{where}: {key} is not supported by the local stack")
