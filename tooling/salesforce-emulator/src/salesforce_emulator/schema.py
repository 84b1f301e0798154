"""The emulated org's data model, loaded from schema.toml (plus user extension files).

Lookups by object, field and relationship name are case-insensitive, as in Salesforce; everything
returned carries the canonical spelling from the schema file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SCHEMA = Path(__file__).with_name("schema.toml")

TEXT_TYPES = {"string", "textarea", "picklist", "email", "phone", "url"}
NUMBER_TYPES = {"int", "double", "currency", "percent"}
FIELD_TYPES = TEXT_TYPES | NUMBER_TYPES | {"id", "boolean", "date", "datetime", "reference"}
_SOAP_TYPES = {
    "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
    "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
    "date": "xsd:date", "datetime": "xsd:dateTime",
}


class SchemaError(ValueError):
    """A schema file names an unknown type, a missing reference target or a malformed entry."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str = ""
    length: int = 0
    required: bool = False
    default: object = None
    external_id: bool = False
    unique: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    values: tuple[str, ...] = ()
    restricted: bool = False
    auto_number: str | None = None
    createable: bool = True
    updateable: bool = True
    system: bool = False
    precision: int = 0
    scale: int = 0

    @property
    def nillable(self) -> bool:
        return not self.required and self.type != "boolean" and not self.system

    def describe(self) -> dict:
        """The describe entry, with the keys clients read most (a subset of Salesforce's ~60 keys)."""
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "length": self.length,
            "precision": self.precision,
            "scale": self.scale,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "defaultedOnCreate": self.default is not None or self.system or self.auto_number is not None,
            "defaultValue": self.default,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.name == "Id" or self.external_id or self.unique,
            "autoNumber": self.auto_number is not None,
            "custom": self.name.endswith("__c"),
            "filterable": self.type != "textarea",
            "sortable": self.type != "textarea",
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "value": v}
                for v in self.values
            ],
            "restrictedPicklist": self.restricted,
        }


@dataclass
class SObjectType:
    name: str
    label: str
    key_prefix: str
    is_event: bool = False
    fields: dict[str, Field] = field(default_factory=dict)  # keyed by lower-case name
    children: list[tuple[str, str, str]] = field(default_factory=list)  # (child, field, relationship)

    @property
    def custom(self) -> bool:
        return self.name.endswith(("__c", "__e"))

    def field(self, name: str) -> Field | None:
        return self.fields.get(name.lower())

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields.values()]

    def relationship(self, name: str) -> Field | None:
        """The reference field behind a parent relationship name (``Account`` -> AccountId)."""
        lowered = name.lower()
        for f in self.fields.values():
            if f.relationship_name and f.relationship_name.lower() == lowered:
                return f
        return None

    def external_id_field(self, name: str) -> Field | None:
        f = self.field(name)
        return f if f is not None and (f.external_id or f.name == "Id") else None

    def describe_global_entry(self, api_version: str) -> dict:
        base = f"/services/data/v{api_version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label + "s",
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "queryable": not self.is_event,
            "createable": True,
            "updateable": not self.is_event,
            "deletable": not self.is_event,
            "retrieveable": not self.is_event,
            "searchable": not self.is_event,
            "triggerable": True,
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def describe(self, api_version: str) -> dict:
        result = self.describe_global_entry(api_version)
        result["fields"] = [f.describe() for f in self.fields.values()]
        result["childRelationships"] = [
            {"childSObject": child, "field": fld, "relationshipName": rel, "cascadeDelete": False}
            for child, fld, rel in self.children
        ]
        result["recordTypeInfos"] = []
        return result


def _system_fields(is_event: bool) -> list[Field]:
    if is_event:
        return [
            Field("ReplayId", "string", length=255, createable=False, updateable=False, system=True),
            Field("EventUuid", "string", length=36, createable=False, updateable=False, system=True),
            Field("CreatedDate", "datetime", createable=False, updateable=False, system=True),
            Field("CreatedById", "reference", reference_to=("User",), relationship_name="CreatedBy",
                  createable=False, updateable=False, system=True),
        ]
    audit = dict(createable=False, updateable=False, system=True)
    return [
        Field("Id", "id", length=18, **audit),
        Field("IsDeleted", "boolean", **audit),
        Field("CreatedDate", "datetime", **audit),
        Field("CreatedById", "reference", reference_to=("User",), relationship_name="CreatedBy", **audit),
        Field("LastModifiedDate", "datetime", **audit),
        Field("LastModifiedById", "reference", reference_to=("User",), relationship_name="LastModifiedBy",
              **audit),
        Field("SystemModstamp", "datetime", **audit),
    ]


def _field_from_entry(obj: str, name: str, entry: dict) -> Field:
    known = {
        "type", "label", "length", "required", "default", "external_id", "unique", "to", "relationship",
        "values", "restricted", "auto_number", "createable", "updateable", "precision", "scale",
    }
    unknown = set(entry) - known
    if unknown:
        raise SchemaError(f"{obj}.{name}: unknown key(s) {sorted(unknown)}")
    ftype = entry.get("type")
    if ftype not in FIELD_TYPES:
        raise SchemaError(f"{obj}.{name}: type must be one of {sorted(FIELD_TYPES)}, got {ftype!r}")
    if ftype == "reference" and not entry.get("to"):
        raise SchemaError(f"{obj}.{name}: a reference needs 'to'")
    auto = entry.get("auto_number")
    read_only = auto is not None
    relationship = entry.get("relationship")
    if ftype == "reference" and relationship is None:
        relationship = name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
    return Field(
        name=name,
        type=ftype,
        label=entry.get("label", name.removesuffix("__c").replace("_", " ")),
        length=int(entry.get("length", 255 if ftype in TEXT_TYPES else 18 if ftype == "reference" else 0)),
        required=bool(entry.get("required", False)),
        default=entry.get("default"),
        external_id=bool(entry.get("external_id", False)),
        unique=bool(entry.get("unique", False)),
        reference_to=tuple(entry.get("to", ())),
        relationship_name=relationship if ftype == "reference" else None,
        values=tuple(entry.get("values", ())),
        restricted=bool(entry.get("restricted", False)),
        auto_number=auto,
        createable=bool(entry.get("createable", not read_only)),
        updateable=bool(entry.get("updateable", not read_only)),
        precision=int(entry.get("precision", 0)),
        scale=int(entry.get("scale", 0)),
    )


class Schema:
    """All object types of the org, with case-insensitive lookups."""

    def __init__(self, objects: Iterable[SObjectType]):
        self._objects = {o.name.lower(): o for o in objects}
        self._by_prefix = {o.key_prefix: o for o in self._objects.values()}

    def get(self, name: str) -> SObjectType | None:
        return self._objects.get(name.lower())

    def by_prefix(self, prefix: str) -> SObjectType | None:
        return self._by_prefix.get(prefix)

    def objects(self) -> list[SObjectType]:
        return list(self._objects.values())


def load_schema(extra_files: Iterable[Path | str] = ()) -> Schema:
    """Read the default schema and merge each extension file over it (objects and fields by name)."""
    merged: dict[str, dict] = {}
    for path in [DEFAULT_SCHEMA, *map(Path, extra_files)]:
        try:
            doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SchemaError(f"{path}: {exc}") from exc
        for name, spec in doc.get("objects", {}).items():
            target = merged.setdefault(name, {"fields": {}})
            for key, value in spec.items():
                if key == "fields":
                    target["fields"].update(value)
                else:
                    target[key] = value

    types: list[SObjectType] = []
    for name, spec in merged.items():
        prefix = spec.get("key_prefix")
        if not isinstance(prefix, str) or len(prefix) != 3:
            raise SchemaError(f"{name}: key_prefix must be 3 characters")
        is_event = bool(spec.get("event", False))
        if is_event != name.endswith("__e"):
            raise SchemaError(f"{name}: platform event names end in __e and set event = true")
        obj = SObjectType(name=name, label=spec.get("label", name), key_prefix=prefix, is_event=is_event)
        for f in _system_fields(is_event):
            obj.fields[f.name.lower()] = f
        for fname, entry in spec["fields"].items():
            obj.fields[fname.lower()] = _field_from_entry(name, fname, entry)
        types.append(obj)

    schema = Schema(types)
    prefixes: dict[str, str] = {}
    for obj in types:
        if obj.key_prefix in prefixes:
            raise SchemaError(f"{obj.name}: key_prefix {obj.key_prefix} already used by {prefixes[obj.key_prefix]}")
        prefixes[obj.key_prefix] = obj.name
        for f in obj.fields.values():
            for target in f.reference_to:
                parent = schema.get(target)
                if parent is None:
                    raise SchemaError(f"{obj.name}.{f.name}: reference to unknown object {target}")
                if not f.system and not obj.is_event:
                    rel = obj.name + "s" if not obj.custom else obj.name[:-3] + "s__r"
                    parent.children.append((obj.name, f.name, rel))
    return schema
