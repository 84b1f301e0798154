"""The declarative field mapping (mapping.toml): loaded, validated and applied in both directions.

Validation happens when a run starts, before anything is read or written; every problem names its entry
(``fields[3] (salesforce "Phone")``) so the file can be fixed without reading code.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DEFAULT_PATH = Path(__file__).with_name("mapping.toml")

ERP_FIELDS = frozenset({"name", "email", "phone", "active", "billing_address.street", "billing_address.city",
                        "billing_address.postal_code", "billing_address.country"})
RESERVED_SALESFORCE = frozenset({"Id", "ERP_Customer_Id__c", "IsDeleted", "SystemModstamp", "LastModifiedById",
                                 "LastModifiedDate", "CreatedDate", "CreatedById"})
SALESFORCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
ConflictRule = Literal["salesforce_wins", "erp_wins", "latest_wins"]
CONFLICT_RULES = ("salesforce_wins", "erp_wins", "latest_wins")
DEACTIVATION = ("update", "delete", "ignore")
DIRECTIONS = ("both", "to_erp", "to_salesforce")


class MappingError(ValueError):
    """The mapping file is unusable; the message names the file and every bad entry."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _empty_as_null(value: Any) -> Any:
    value = _strip(value)
    return None if value == "" else value


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    if text == "":
        return None
    raise ValueError(f"not a boolean: {value!r}")


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "none": lambda value: value,
    "strip": _strip,
    "upper": lambda value: _strip(value).upper() if isinstance(value, str) else value,
    "lower": lambda value: _strip(value).lower() if isinstance(value, str) else value,
    "empty_as_null": _empty_as_null,
    "boolean": _boolean,
}


@dataclass(frozen=True)
class FieldMap:
    salesforce: str
    erp: str
    direction: str
    transform: str

    def convert(self, value: Any) -> Any:
        return TRANSFORMS[self.transform](value)


@dataclass(frozen=True)
class SyncMapping:
    """A validated mapping; `to_erp` / `to_salesforce` build the other side's record."""

    fields: tuple[FieldMap, ...]
    conflict_rule: str
    on_erp_deactivation: str
    group_by: str | None
    source: str

    @property
    def salesforce_fields(self) -> list[str]:
        """Fields to read from Salesforce: the mapped ones flowing to the ERP, and the ones the sync needs."""
        names = ["Id", "ERP_Customer_Id__c", "SystemModstamp", "LastModifiedDate", "LastModifiedById"]
        names += [f.salesforce for f in self.fields if f.direction != "to_salesforce" and f.salesforce not in names]
        return names

    def to_erp(self, account: Mapping[str, Any]) -> dict[str, Any]:
        """An ERP customer body (writable fields only) from a Salesforce Account row (REST or Bulk CSV)."""
        body: dict[str, Any] = {}
        address: dict[str, Any] = {}
        for field in self.fields:
            if field.direction == "to_salesforce":
                continue
            raw = account.get(field.salesforce)
            value = field.convert(None if raw == "" else raw)  # Bulk CSV has no null: empty is null
            if field.erp.startswith("billing_address."):
                address[field.erp.split(".", 1)[1]] = _text(value)
            elif field.erp == "active":
                if value is not None:
                    body["active"] = bool(value)
            else:
                body[field.erp] = _text(value)
        if address:
            body["billing_address"] = address if any(v is not None for v in address.values()) else None
        return body

    def to_salesforce(self, customer: Mapping[str, Any]) -> dict[str, Any]:
        """Account fields from an ERP customer (the keys are added by the caller)."""
        record: dict[str, Any] = {}
        address = customer.get("billing_address") or {}
        for field in self.fields:
            if field.direction == "to_erp":
                continue
            if field.erp.startswith("billing_address."):
                raw = address.get(field.erp.split(".", 1)[1])
            else:
                raw = customer.get(field.erp)
            record[field.salesforce] = field.convert(raw)
        return record


def load_mapping(path: str | Path | None = None) -> SyncMapping:
    """Read and validate the mapping (SYNC_MAPPING_FILE, else the packaged mapping.toml)."""
    source = Path(path or os.environ.get("SYNC_MAPPING_FILE") or DEFAULT_PATH)
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"mapping file {source} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"mapping file {source} is not valid TOML: {exc}") from None
    return parse_mapping(data, str(source))


def parse_mapping(data: Mapping[str, Any], source: str = "mapping") -> SyncMapping:
    problems: list[str] = []
    unknown = sorted(set(data) - {"sync", "fields"})
    if unknown:
        problems.append(f"unknown section(s): {', '.join(unknown)}")
    sync = data.get("sync", {})
    if not isinstance(sync, dict):
        problems.append("[sync] must be a table")
        sync = {}
    unknown = sorted(set(sync) - {"conflict_rule", "on_erp_deactivation", "group_by"})
    if unknown:
        problems.append(f"[sync]: unknown key(s): {', '.join(unknown)}")
    rule = sync.get("conflict_rule", "salesforce_wins")
    if rule not in CONFLICT_RULES:
        problems.append(f"[sync] conflict_rule {rule!r}: must be one of {', '.join(CONFLICT_RULES)}")
    deactivation = sync.get("on_erp_deactivation", "update")
    if deactivation not in DEACTIVATION:
        problems.append(f"[sync] on_erp_deactivation {deactivation!r}: must be one of {', '.join(DEACTIVATION)}")
    group_by = sync.get("group_by")
    if group_by is not None and (not isinstance(group_by, str) or not SALESFORCE_NAME.match(group_by)):
        problems.append(f"[sync] group_by {group_by!r}: must be a Salesforce field name")

    entries = data.get("fields")
    fields: list[FieldMap] = []
    if not isinstance(entries, list) or not entries:
        problems.append("[[fields]]: at least one field mapping is required")
        entries = []
    seen_sf: dict[str, int] = {}
    seen_erp: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"fields[{index}]: must be a table with salesforce and erp")
            continue
        label = f"fields[{index}] (salesforce {entry.get('salesforce')!r}, erp {entry.get('erp')!r})"
        bad = sorted(set(entry) - {"salesforce", "erp", "direction", "transform"})
        if bad:
            problems.append(f"{label}: unknown key(s): {', '.join(bad)}")
        sf, erp = entry.get("salesforce"), entry.get("erp")
        direction, transform = entry.get("direction", "both"), entry.get("transform", "none")
        if not isinstance(sf, str) or not SALESFORCE_NAME.match(sf):
            problems.append(f"{label}: salesforce must be a field API name such as BillingCity")
        elif sf in RESERVED_SALESFORCE:
            problems.append(f"{label}: {sf} is maintained by the sync itself and cannot be mapped")
        elif sf in seen_sf:
            problems.append(f"{label}: salesforce field {sf} is already mapped by fields[{seen_sf[sf]}]")
        else:
            seen_sf[sf] = index
        if erp not in ERP_FIELDS:
            problems.append(f"{label}: erp must be one of {', '.join(sorted(ERP_FIELDS))}")
        elif erp in seen_erp:
            problems.append(f"{label}: erp field {erp} is already mapped by fields[{seen_erp[erp]}]")
        else:
            seen_erp[erp] = index
        if direction not in DIRECTIONS:
            problems.append(f"{label}: direction {direction!r} must be one of {', '.join(DIRECTIONS)}")
        if transform not in TRANSFORMS:
            problems.append(f"{label}: transform {transform!r} must be one of {', '.join(sorted(TRANSFORMS))}")
        if isinstance(sf, str) and isinstance(erp, str) and not any(p.startswith(label) for p in problems):
            fields.append(FieldMap(sf, erp, direction, transform))
    if entries and not problems:
        if not any(f.erp == "name" and f.direction != "to_salesforce" for f in fields):
            problems.append("[[fields]]: the ERP's required field name must be mapped (direction both or to_erp)")
        if not any(f.salesforce == "Name" and f.direction != "to_erp" for f in fields):
            problems.append("[[fields]]: Salesforce's required field Name must be mapped (direction both or "
                            "to_salesforce)")
        if deactivation == "update" and not any(f.erp == "active" and f.direction != "to_erp" for f in fields):
            problems.append("[sync] on_erp_deactivation 'update' needs a field mapped from erp 'active'")
    if problems:
        raise MappingError(f"mapping file {source} is invalid: " + "; ".join(problems))
    return SyncMapping(tuple(fields), rule, deactivation, group_by, source)
