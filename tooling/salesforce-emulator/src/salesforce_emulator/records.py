"""Record writes and reads with Salesforce's validation rules and error codes.

Every REST, Composite, Collections, Tree and Bulk operation goes through ``RecordService`` so that
one record is validated the same way whatever API wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ids
from .errors import ApiError
from .schema import Field, Schema, SObjectType
from .store import Store
from .values import convert, format_datetime, utc_now


def malformed_id(value: object, field: str | None = None) -> ApiError:
    where = f"{field}: id value of incorrect type: {value}" if field else f"malformed id {value}"
    return ApiError(400, "MALFORMED_ID", where, [field] if field else [])


@dataclass(frozen=True)
class UpsertResult:
    id: str
    created: bool


class RecordService:
    def __init__(self, schema: Schema, store: Store, id_factory: ids.IdFactory):
        self.schema = schema
        self.store = store
        self.ids = id_factory

    # -- lookups ---------------------------------------------------------------------------------

    def sobject(self, name: str, *, status: int = 404) -> SObjectType:
        """The type for a name in a URL (404 NOT_FOUND) or a body (400 INVALID_TYPE)."""
        obj = self.schema.get(name) if isinstance(name, str) else None
        if obj is None:
            if status == 404:
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
        return obj

    def _normalize_id(self, value: object, field: str | None = None) -> str:
        if not isinstance(value, str) or not ids.is_well_formed(value):
            raise malformed_id(value, field)
        return ids.to18(value)

    def find(self, obj: SObjectType, record_id: str) -> dict:
        """The live record or 404 NOT_FOUND / ENTITY_IS_DELETED, as a single-record GET reports."""
        rid = self._normalize_id(record_id)
        record = self.store.get(rid)
        if record is None or record.get("attributes_type", obj.name) != obj.name:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if record.get("IsDeleted"):
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return record

    def record_type(self, record: dict) -> str:
        return record["attributes_type"]

    def find_by_external_id(self, obj: SObjectType, field_name: str, value: str) -> list[dict]:
        field = obj.external_id_field(field_name)
        if field is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if field.name == "Id":
            try:
                return [self.find(obj, value)]
            except ApiError:
                return []
        owner = self.store.unique_owner(obj.name, field.name, str(value)) if field.unique else None
        if field.unique:
            found = self.store.get(owner) if owner else None
            return [found] if found and not found.get("IsDeleted") else []
        wanted = str(value).lower()
        return [r for r in self.store.scan(obj.name)
                if r.get(field.name) is not None and str(r[field.name]).lower() == wanted]

    def public(self, record: dict, api_version: str, fields: list[str] | None = None) -> dict:
        """A record as GET returns it: attributes first, then the fields (all, or the ones asked)."""
        obj = self.schema.get(record["attributes_type"])
        assert obj is not None
        out: dict = {"attributes": {"type": obj.name,
                                    "url": f"/services/data/v{api_version}/sobjects/{obj.name}/{record['Id']}"}}
        names = obj.field_names() if fields is None else fields
        for name in names:
            f = obj.field(name)
            if f is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'.")
            out[f.name] = record.get(f.name, False if f.type == "boolean" else None)
        return out

    # -- writes ----------------------------------------------------------------------------------

    def _apply_fields(self, obj: SObjectType, body: dict, target: dict, *, creating: bool, source: str) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
        for key, value in body.items():
            if key == "attributes":
                continue
            if not isinstance(key, str):
                raise ApiError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}")
            if key.lower() == "id":
                if creating:
                    raise ApiError(400, "INVALID_FIELD",
                                   "The Id field should not be specified in the sobject data.", ["Id"])
                continue
            field = obj.field(key)
            if field is None:
                ref = obj.relationship(key)
                if ref is not None and isinstance(value, dict):
                    target[ref.name] = self._resolve_foreign_key(ref, value)
                    continue
                raise ApiError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}",
                               [key])
            if (creating and not field.createable) or (not creating and not field.updateable):
                raise ApiError(
                    400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {field.name}. Please check the security settings of "
                    f"this field and verify that it is read/write for your profile or permission set.",
                    [field.name],
                )
            converted = convert(field, value, source)
            if field.type == "reference" and converted is not None:
                converted = self._check_reference(field, converted)
            if converted is None and field.required:
                raise ApiError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field.name}]",
                               [field.name])
            target[field.name] = converted

    def build_fields(self, obj: SObjectType, body: dict, *, source: str = "json") -> dict:
        """Validate a create body without writing it (platform events are validated this way)."""
        values: dict = {}
        self._apply_fields(obj, body, values, creating=True, source=source)
        for field in obj.fields.values():
            if field.system:
                continue
            if field.name not in values and field.default is not None:
                values[field.name] = field.default
            if field.required and values.get(field.name) is None:
                raise ApiError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field.name}]",
                               [field.name])
        return values

    def _resolve_foreign_key(self, ref: Field, value: dict) -> str:
        """``"Account": {"ERP_Customer_Id__c": "C-1"}`` sets AccountId from the parent's external id."""
        parent = self.schema.get(value.get("attributes", {}).get("type", ref.reference_to[0])) \
            if isinstance(value.get("attributes"), dict) else self.schema.get(ref.reference_to[0])
        keys = [k for k in value if k != "attributes"]
        if parent is None or len(keys) != 1 or parent.external_id_field(keys[0]) is None:
            raise ApiError(400, "INVALID_FIELD",
                           f"Foreign key reference for {ref.relationship_name} must name one external id field",
                           [ref.name])
        field = parent.external_id_field(keys[0])
        assert field is not None
        matches = self.find_by_external_id(parent, field.name, str(value[keys[0]]))
        if not matches:
            raise ApiError(400, "INVALID_FIELD",
                           f"Foreign key external ID: {value[keys[0]]} not found for field {field.name} in "
                           f"entity {parent.name}", [ref.name])
        if len(matches) > 1:
            raise ApiError(400, "INVALID_FIELD",
                           f"Foreign key external ID: {value[keys[0]]} matches more than one record", [ref.name])
        return matches[0]["Id"]

    def _check_reference(self, field: Field, value: str) -> str:
        if not ids.is_well_formed(value):
            raise malformed_id(value, field.name)
        rid = ids.to18(value)
        target = self.store.get(rid)
        if (target is None or target.get("IsDeleted")
                or target["attributes_type"] not in field.reference_to):
            raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY",
                           "invalid cross reference id", [field.name])
        return rid

    def _check_unique(self, obj: SObjectType, record: dict) -> None:
        for field in obj.fields.values():
            if not field.unique:
                continue
            value = record.get(field.name)
            if value is None:
                continue
            owner = self.store.unique_owner(obj.name, field.name, str(value))
            if owner is not None and owner != record["Id"]:
                raise ApiError(
                    400, "DUPLICATE_VALUE",
                    f"duplicate value found: {field.name} duplicates value on record with id: {owner}",
                    [field.name],
                )

    def _index_unique(self, obj: SObjectType, record: dict) -> None:
        for field in obj.fields.values():
            if field.unique:
                value = record.get(field.name)
                self.store.set_unique(obj.name, field.name, None if value is None else str(value), record["Id"])

    def create(self, sobject: str, body: dict, user_id: str, *, source: str = "json",
               body_type_status: int = 404) -> str:
        obj = self.sobject(sobject, status=body_type_status)
        if obj.is_event:
            raise ApiError(400, "INVALID_OPERATION", "Publish platform events through the event bus")
        record: dict = {}
        self._apply_fields(obj, body, record, creating=True, source=source)
        for field in obj.fields.values():
            if field.system:
                continue
            if field.name not in record and field.default is not None:
                record[field.name] = field.default
            if field.auto_number is not None:
                n = self.store.next_counter(f"autonumber:{obj.name}.{field.name}")
                record[field.name] = str(n).zfill(len(field.auto_number))
            if field.required and record.get(field.name) is None:
                raise ApiError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field.name}]",
                               [field.name])
        if obj.field("OwnerId") is not None and record.get("OwnerId") is None:
            record["OwnerId"] = user_id
        now = format_datetime(utc_now())
        record.update({
            "Id": self.ids.new(obj.key_prefix), "IsDeleted": False, "CreatedDate": now, "CreatedById": user_id,
            "LastModifiedDate": now, "LastModifiedById": user_id, "SystemModstamp": now,
            "attributes_type": obj.name,
        })
        with self.store.transaction():
            self._check_unique(obj, record)
            self.store.insert(obj.name, record)
            self._index_unique(obj, record)
        return record["Id"]

    def update(self, sobject: str, record_id: str, body: dict, user_id: str, *, source: str = "json") -> str:
        obj = self.sobject(sobject)
        with self.store.transaction():
            record = self.find(obj, record_id)
            self._apply_fields(obj, body, record, creating=False, source=source)
            now = format_datetime(utc_now())
            record.update({"LastModifiedDate": now, "LastModifiedById": user_id, "SystemModstamp": now})
            self._check_unique(obj, record)
            self.store.replace(record)
            self._index_unique(obj, record)
        return record["Id"]

    def upsert(self, sobject: str, field_name: str, value: str, body: dict, user_id: str,
               *, source: str = "json") -> UpsertResult:
        obj = self.sobject(sobject)
        field = obj.external_id_field(field_name)
        if field is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
        with self.store.transaction():
            if field.name == "Id":
                if value:
                    self.update(obj.name, value, body, user_id, source=source)
                    return UpsertResult(ids.to18(value), False)
                return UpsertResult(self.create(obj.name, body, user_id, source=source), True)
            body_value = next((v for k, v in body.items() if k.lower() == field.name.lower()), None)
            if body_value is not None and str(body_value) != str(value):
                raise ApiError(400, "INVALID_FIELD",
                               f"The {field.name} field should not be specified in the sobject data for an "
                               f"upsert by {field.name}.", [field.name])
            matches = self.find_by_external_id(obj, field.name, value)
            if len(matches) > 1:
                raise ApiError(300, "MULTIPLE_CHOICES", "More than one record found for external id",
                               [m["Id"] for m in matches])
            fields = {k: v for k, v in body.items() if k.lower() != field.name.lower()}
            if matches:
                self.update(obj.name, matches[0]["Id"], fields, user_id, source=source)
                return UpsertResult(matches[0]["Id"], False)
            fields[field.name] = value
            return UpsertResult(self.create(obj.name, fields, user_id, source=source), True)

    def delete(self, sobject: str | None, record_id: str, user_id: str) -> str:
        rid = self._normalize_id(record_id)
        with self.store.transaction():
            record = self.store.get(rid)
            if record is None or (sobject is not None and record["attributes_type"].lower() != sobject.lower()):
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            if record.get("IsDeleted"):
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
            now = format_datetime(utc_now())
            record.update({"IsDeleted": True, "LastModifiedDate": now, "LastModifiedById": user_id,
                           "SystemModstamp": now})
            self.store.replace(record)
            self.store.drop_unique(rid)
        return rid
