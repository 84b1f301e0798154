"""SOQL literals built from user input, always escaped.

Same rules as simple_salesforce.format (the SOQL quoted-string escapes), re-implemented in a few lines
because importing that module imports all of simple_salesforce (and zeep/lxml) at cold start.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

_ESCAPES = str.maketrans(
    {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
)
_LIKE_ESCAPES = str.maketrans({"%": "\\%", "_": "\\_"})
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")


def quote_soql(value: Any) -> str:
    """Render a Python value as a SOQL literal: strings quoted and escaped, lists as ``(a,b)``, aware datetimes
    in UTC with milliseconds (``2024-05-01T10:30:15.123Z``)."""
    if isinstance(value, str):
        return "'" + value.translate(_ESCAPES) + "'"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("SOQL datetimes must be timezone-aware")
        # Milliseconds kept (Salesforce stores them: SystemModstamp = a value read back must match it);
        # finer digits are truncated. simple-salesforce drops the milliseconds, which breaks key-set paging.
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return "(" + ",".join(quote_soql(item) for item in value) + ")"
    raise TypeError(f"cannot render {type(value).__name__} as a SOQL literal")


def quote_like(value: str) -> str:
    """Escape a string for use inside a LIKE pattern (caller adds the % wildcards), quoted."""
    return "'" + str(value).translate(_ESCAPES).translate(_LIKE_ESCAPES) + "'"


def field_name(value: str) -> str:
    """Validate a field/object name taken from input (``Account.Name``); raises ValueError otherwise."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ValueError("not a valid SOQL field or object name")
    return value


class _SoqlFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec == "":
            return quote_soql(value)
        if format_spec == "like":
            return quote_like(value)
        if format_spec == "field":
            return field_name(value)
        if format_spec == "fields":
            return ", ".join(field_name(item) for item in _as_list(value))
        raise ValueError(f"unknown SOQL format spec {format_spec!r}; use '', 'like', 'field' or 'fields'")


def _as_list(value: Any) -> Iterable[Any]:
    return [value] if isinstance(value, str) else list(value)


def soql(template: str, /, **params: Any) -> str:
    """Fill ``{name}`` placeholders with escaped literals.

    ``{x}`` is a quoted literal, ``{x:like}`` a LIKE-escaped string, ``{x:field}`` / ``{x:fields}`` a checked
    field name or list of names. Example: ``soql("SELECT Id FROM Account WHERE Name = {name}", name=n)``.
    """
    return _SoqlFormatter().format(template, **params)
