"""Conversion of incoming field values (JSON or CSV text) to the stored wire format.

Stored values are what Salesforce puts on the wire: datetimes as ``2024-05-01T10:00:00.000+0000``,
dates as ``2024-05-01``, numbers as JSON numbers, booleans, strings, or None.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from .errors import ApiError
from .schema import NUMBER_TYPES, TEXT_TYPES, Field

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def format_datetime(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> dt.datetime | None:
    """ISO 8601 as Salesforce accepts it; naive values are UTC. None when not a datetime."""
    m = _DATETIME.match(text.strip())
    if not m:
        return None
    day, hh, mm, ss, frac, tz = m.groups()
    try:
        base = dt.datetime.fromisoformat(f"{day}T{hh}:{mm}:{ss or '00'}")
    except ValueError:
        return None
    micro = int((frac or "0")[:6].ljust(6, "0"))
    base = base.replace(microsecond=micro)
    if tz in (None, "Z"):
        return base.replace(tzinfo=dt.UTC)
    sign = 1 if tz[0] == "+" else -1
    digits = tz[1:].replace(":", "")
    offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return base.replace(tzinfo=dt.timezone(sign * offset)).astimezone(dt.UTC)


def _bad(field: Field, value: object, source: str) -> ApiError:
    if source == "json":
        kind = {"int": "int", "boolean": "boolean", "date": "date", "datetime": "datetime"}.get(
            field.type, "double" if field.type in NUMBER_TYPES else "string"
        )
        return ApiError(
            400, "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {kind} from VALUE_STRING value {value} or request may be "
            f"missing a required field",
        )
    return ApiError(
        400, "INVALID_TYPE_ON_FIELD_IN_RECORD",
        f"{field.label or field.name}: value not of required type: {value}", [field.name],
    )


def convert(field: Field, value: object, source: str = "json") -> object:
    """Validate and convert one value; ``source`` is "json" (REST) or "csv" (Bulk API text)."""
    if value is None or (source == "csv" and value == ""):
        return None
    ftype = field.type
    if ftype in TEXT_TYPES or ftype in ("id", "reference"):
        if isinstance(value, (bool, dict, list)):
            raise _bad(field, value, source)
        text = value if isinstance(value, str) else str(value)
        if ftype in TEXT_TYPES and field.length and len(text) > field.length:
            raise ApiError(
                400, "STRING_TOO_LONG",
                f"{field.label or field.name}: data value too large: {text[:40]}... (max length={field.length})",
                [field.name],
            )
        if ftype == "email" and text and not _EMAIL.match(text):
            raise ApiError(400, "INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address: {text}",
                           [field.name])
        if ftype == "picklist" and field.restricted and text not in field.values:
            raise ApiError(
                400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{field.label or field.name}: bad value for restricted picklist field: {text}", [field.name],
            )
        return text
    if ftype == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise _bad(field, value, source)
    if ftype in NUMBER_TYPES:
        if isinstance(value, bool):
            raise _bad(field, value, source)
        if isinstance(value, (int, float)):
            number = value
        elif isinstance(value, str):
            try:
                number = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise _bad(field, value, source) from None
        else:
            raise _bad(field, value, source)
        if isinstance(number, float) and not math.isfinite(number):
            raise _bad(field, value, source)
        if ftype == "int":
            if isinstance(number, float) and not number.is_integer():
                raise _bad(field, value, source)
            return int(number)
        return number
    if ftype == "date":
        if isinstance(value, str):
            text = value.strip()
            if _DATE.match(text):
                try:
                    return dt.date.fromisoformat(text).isoformat()
                except ValueError:
                    pass
            moment = parse_datetime(text)
            if moment is not None:
                return moment.date().isoformat()
        raise _bad(field, value, source)
    if ftype == "datetime":
        if isinstance(value, str):
            moment = parse_datetime(value)
            if moment is not None:
                return format_datetime(moment)
            if _DATE.match(value.strip()):
                try:
                    return format_datetime(dt.datetime.fromisoformat(value.strip()).replace(tzinfo=dt.UTC))
                except ValueError:
                    pass
        raise _bad(field, value, source)
    raise _bad(field, value, source)
