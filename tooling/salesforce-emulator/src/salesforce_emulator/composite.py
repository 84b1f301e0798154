"""Composite resources: ``/composite``, sObject Collections, sObject Tree and Composite Graph.

Every resource here writes inside ``store.transaction()``: an all-or-none failure raises to roll back
everything the request wrote, then the response is built from what was recorded before the rollback.
Composite subrequests run through ``app.dispatch_internal`` so each is validated by the same routes as
a standalone call, while the whole composite counts as one API request.

Error codes for malformed bodies are not all documented; the choices, marked [unconfirmed], are:
a body of the wrong shape (not an object, a required property missing or of the wrong type, an
illegal or duplicate referenceId) answers 400 ``JSON_PARSER_ERROR``; too many records answers 400
``EXCEEDED_ID_LIMIT`` (the code Salesforce uses for its 200-record cap); any other count limit answers
400 ``LIMIT_EXCEEDED``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import ids
from .errors import ApiError
from .http import Request, Response, Router
from .records import malformed_id
from .rest import ENQUEUED_SINCE
from .schema import SObjectType

if TYPE_CHECKING:
    from .app import EmulatorApp

MAX_SUBREQUESTS = 25
MAX_QUERY_OR_COLLECTION_SUBREQUESTS = 5
MAX_COLLECTION_RECORDS = 200
MAX_RETRIEVE_IDS = 2000
MAX_CHUNKS = 10
MAX_TREE_RECORDS = 200
MAX_TREE_DEPTH = 5
MAX_TREE_TYPES = 5
MAX_GRAPHS = 75
MAX_GRAPH_NODES = 500
MAX_GRAPH_FAILURES = 14  # after this many failed graphs the rest are halted
GRAPH_SINCE = 50.0
UPSERT_COLLECTION_SINCE = 46.0

SUBREQUEST_METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT", "HEAD")
_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_]+$")
_REFERENCE = re.compile(r"@\{(?P<ref>[A-Za-z0-9_]+)(?P<path>(?:\.[^.\[\]{}]+|\[\d+\])+)\}")
_PATH_STEP = re.compile(r"\.([^.\[\]{}]+)|\[(\d+)\]")
_SUBREQUEST_URL = re.compile(
    r"^/services/data/v(?P<version>\d{2}\.\d)/(?P<resource>composite/sobjects|sobjects|queryAll|query)(?:[/?]|$)")
_GRAPH_URL = re.compile(r"^/services/data/v(?P<version>\d{2}\.\d)/sobjects/")
_LIMITED_RESOURCES = ("composite/sobjects", "query", "queryAll")

HALTED_MESSAGE = "The transaction was rolled back since another operation in the same transaction failed."
ROLLED_BACK_ERROR = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}


class _RollBack(Exception):
    """Raised inside a transaction to undo it once the outcome to report is known."""


def _malformed(message: str) -> ApiError:
    return ApiError(400, "JSON_PARSER_ERROR", message)


def _too_many_records(limit: int) -> ApiError:
    # Salesforce's wording for its record cap on collection calls (seen in client issue threads).
    return ApiError(400, "EXCEEDED_ID_LIMIT",
                    f"record limit reached. cannot submit more than {limit} records into this call")


def _flag(value: object, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _malformed(f"{name} must be a boolean, got {json.dumps(value)}")
    return value


# -- composite subrequests and references ---------------------------------------------------------

@dataclass(frozen=True)
class Subrequest:
    method: str
    url: str
    reference_id: str
    body: object
    resource: str
    version: str


class _Unresolved(Exception):
    """A reference to a subrequest that failed, has not run, or whose response lacks the path."""

    def __init__(self, ref: str, path: str):
        # [unconfirmed] wording; Salesforce reports unusable references as PROCESSING_HALTED.
        super().__init__(f"Invalid reference specified. No value for {ref}{path} found in {ref}. "
                         f"Provided referenceId ('{ref}') must be from a previous sub request in the same "
                         f"request.")


def parse_subrequests(items: object, *, graph: bool = False) -> list[Subrequest]:
    """Validate a compositeRequest array up front, so a malformed one executes nothing."""
    if not isinstance(items, list) or not items:
        raise _malformed("compositeRequest must be a non-empty array of subrequests")
    parsed: list[Subrequest] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _malformed(f"compositeRequest[{index}] must be an object")
        ref, method, url = item.get("referenceId"), item.get("method"), item.get("url")
        if not isinstance(ref, str) or not ref:
            raise _malformed(f"compositeRequest[{index}]: referenceId is required")
        if not _REFERENCE_ID.match(ref):
            raise _malformed(f"Invalid referenceId '{ref}': a referenceId may contain only letters, numbers "
                             f"and underscores")
        if ref in seen:
            raise _malformed(f"Duplicate referenceId '{ref}': each subrequest needs its own referenceId")
        seen.add(ref)
        if not isinstance(method, str) or method not in SUBREQUEST_METHODS:
            raise _malformed(f"{ref}: method must be one of {', '.join(SUBREQUEST_METHODS)}")
        if not isinstance(url, str) or not url:
            raise _malformed(f"{ref}: url is required")
        if "httpHeaders" in item and not isinstance(item["httpHeaders"], dict):
            raise _malformed(f"{ref}: httpHeaders must be an object")
        shape = (_GRAPH_URL if graph else _SUBREQUEST_URL).match(url)
        if shape is None:
            supported = ("sobjects resources" if graph else
                         "sobjects, query, queryAll and composite/sobjects resources")
            raise _malformed(f"{ref}: url must start with /services/data/vXX.X/ and name one of the {supported}")
        resource = "sobjects" if graph else shape.group("resource")
        parsed.append(Subrequest(method, url, ref, item.get("body"), resource, shape.group("version")))
    return parsed


def _step(value: object, key: str | None, index: str | None) -> object:
    if key is not None:
        if not isinstance(value, dict):
            raise KeyError(key)
        if key in value:
            return value[key]
        lowered = {k.lower(): v for k, v in value.items() if isinstance(k, str)}
        return lowered[key.lower()]
    if not isinstance(value, list):
        raise KeyError(index)
    return value[int(index or 0)]


def _lookup(results: dict[str, object], ref: str, path: str) -> object:
    if ref not in results:
        raise _Unresolved(ref, path)
    value = results[ref]
    try:
        for key, index in _PATH_STEP.findall(path):
            value = _step(value, key or None, index or None)
    except (KeyError, IndexError):
        raise _Unresolved(ref, path) from None
    if isinstance(value, (dict, list)):  # only scalar values can be referenced
        raise _Unresolved(ref, path)
    return value


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _substitute(value: object, results: dict[str, object]) -> object:
    """Replace ``@{ref.path}`` in strings; a string that is only a reference takes the value's JSON type."""
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if not isinstance(value, str) or "@{" not in value:
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole:
        return _lookup(results, whole["ref"], whole["path"])
    return _REFERENCE.sub(lambda m: _as_text(_lookup(results, m["ref"], m["path"])), value)


def _entry(sub: Subrequest, status: int, body: object, headers: dict[str, str] | None = None) -> dict:
    return {"body": body, "httpHeaders": headers or {}, "httpStatusCode": status, "referenceId": sub.reference_id}


def _halted(sub: Subrequest, message: str = HALTED_MESSAGE) -> dict:
    return _entry(sub, 400, [{"errorCode": "PROCESSING_HALTED", "message": message}])


def _collection_failed(body: object) -> bool:
    return isinstance(body, list) and any(isinstance(r, dict) and r.get("success") is False for r in body)


class CompositeRunner:
    """Runs subrequests in order, resolving references against the responses of earlier ones."""

    def __init__(self, app: EmulatorApp):
        self.app = app

    def run(self, subs: list[Subrequest], all_or_none: bool, user_id: str) -> tuple[list[dict], bool]:
        """(compositeResponse entries, whether every subrequest succeeded)."""
        if not all_or_none:
            entries, failed_at = self._execute(subs, user_id, all_or_none=False)
            return entries, not failed_at
        entries = []
        failed_at = []
        try:
            with self.app.store.transaction():
                entries, failed_at = self._execute(subs, user_id, all_or_none=True)
                if failed_at:
                    raise _RollBack
        except _RollBack:
            first = failed_at[0]
            return [entries[i] if i == first else _halted(sub) for i, sub in enumerate(subs)], False
        return entries, True

    def _execute(self, subs: list[Subrequest], user_id: str, *, all_or_none: bool) -> tuple[list[dict], list[int]]:
        results: dict[str, object] = {}  # referenceId -> response body of a subrequest that succeeded
        entries: list[dict] = []
        failed_at: list[int] = []
        for index, sub in enumerate(subs):
            try:
                url = str(_substitute(sub.url, results))
                body = _substitute(sub.body, results)
            except _Unresolved as exc:
                entries.append(_halted(sub, str(exc)))
                failed_at.append(index)
            else:
                entry = self._dispatch(sub, url, body, user_id, all_or_none)
                entries.append(entry)
                if entry["httpStatusCode"] >= 400 or (all_or_none and _collection_failed(entry["body"])):
                    failed_at.append(index)
                else:
                    results[sub.reference_id] = entry["body"]
            if failed_at and all_or_none:
                break
        return entries, failed_at

    def _dispatch(self, sub: Subrequest, url: str, body: object, user_id: str, all_or_none: bool) -> dict:
        from .app import SUPPORTED_VERSIONS

        if sub.version not in SUPPORTED_VERSIONS:  # as a standalone call to that version would answer
            return _entry(sub, 404, ApiError(404, "NOT_FOUND", "The requested resource does not exist").body())
        if all_or_none and sub.resource == "composite/sobjects":
            # a composite allOrNone overrides the allOrNone of an embedded collections subrequest [doc]
            if isinstance(body, dict):
                body = {**body, "allOrNone": True}
            if sub.method == "DELETE":
                url += ("&" if "?" in url else "?") + "allOrNone=true"
        try:
            with self.app.store.transaction():  # a failed subrequest leaves nothing half-written
                resp = self.app.dispatch_internal(sub.method, url, body, user_id)
                if resp.status >= 400:
                    raise _RollBack
        except _RollBack:
            pass
        payload = resp.body.decode("utf-8", "replace") if isinstance(resp.body, bytes) else resp.body
        return _entry(sub, resp.status, payload, dict(resp.headers))


# -- sObject Collections ----------------------------------------------------------------------------

def _record_type(schema_get: Callable[[str], SObjectType | None], record: dict) -> SObjectType:
    attrs = record.get("attributes")
    name = attrs.get("type") if isinstance(attrs, dict) else None
    if not isinstance(name, str) or not name:
        raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
    obj = schema_get(name)
    if obj is None:
        raise ApiError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
    return obj


def _record_error(exc: ApiError) -> dict:
    """The statusCode envelope, with REST-only codes mapped to what a per-record result reports."""
    error = exc.collection_error()
    if exc.error_code == "NOT_FOUND":
        # [unconfirmed] a well-formed id of no live record is reported like the SOAP API does
        error = {"statusCode": "INVALID_CROSS_REFERENCE_KEY", "message": "invalid cross reference id",
                 "fields": []}
    elif exc.error_code == "MULTIPLE_CHOICES":
        error = {"statusCode": "DUPLICATE_EXTERNAL_ID",
                 "message": "A user-specified external ID matches more than one record during an upsert.",
                 "fields": exc.fields}
    return error


def _failure(exc: ApiError) -> dict:
    return {"success": False, "errors": [_record_error(exc)]}


class Collections:
    """``/composite/sobjects``: up to 200 records per call, one result per record in request order."""

    def __init__(self, app: EmulatorApp):
        self.app = app
        self.records = app.records

    def _body(self, req: Request) -> tuple[list[dict], bool]:
        body = req.json()
        if not isinstance(body, dict):
            raise _malformed("The request body must be a JSON object with a records array")
        records = body.get("records")
        if not isinstance(records, list):
            raise _malformed("records is required and must be an array of records")
        all_or_none = _flag(body.get("allOrNone"), "allOrNone")
        if len(records) > MAX_COLLECTION_RECORDS:
            raise _too_many_records(MAX_COLLECTION_RECORDS)
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                raise _malformed(f"records[{index}] must be a JSON object")
        return records, all_or_none

    def _each(self, items: list, operation: Callable[[object], dict], all_or_none: bool) -> list[dict]:
        """Apply ``operation`` per item in its own savepoint; with allOrNone undo all on any failure."""
        store = self.app.store

        def attempt(item: object) -> dict:
            try:
                with store.transaction():
                    return operation(item)
            except ApiError as exc:
                return _failure(exc)

        if not all_or_none:
            return [attempt(item) for item in items]
        results: list[dict] = []
        try:
            with store.transaction():
                results = [attempt(item) for item in items]
                if any(not r["success"] for r in results):
                    raise _RollBack
        except _RollBack:
            return [r if not r["success"] else {"success": False, "errors": [dict(ROLLED_BACK_ERROR)]}
                    for r in results]
        return results

    def create(self, req: Request) -> Response:
        records, all_or_none = self._body(req)
        types = [r["attributes"].get("type") if isinstance(r.get("attributes"), dict) else None for r in records]
        chunks = sum(1 for i, t in enumerate(types)
                     if i == 0 or str(t).lower() != str(types[i - 1]).lower())
        if chunks > MAX_CHUNKS:
            # [unconfirmed] errorCode; the limit and message follow Salesforce's DML chunking rule
            raise ApiError(400, "LIMIT_EXCEEDED", f"Cannot have more than {MAX_CHUNKS} chunks in a single "
                                                  f"operation. Please rearrange the data to reduce chunking.")
        enqueued = float(req.api_version or "0") >= ENQUEUED_SINCE

        def create_one(record: object) -> dict:
            assert isinstance(record, dict)
            obj = _record_type(self.app.schema.get, record)
            fields = {k: v for k, v in record.items() if k != "attributes"}
            if obj.is_event:
                event = self.app.events.publish(obj, fields, req.user_id)  # type: ignore[attr-defined]
                errors = ([{"statusCode": "OPERATION_ENQUEUED", "message": event["EventUuid"], "fields": []}]
                          if enqueued else [])
                return {"id": event["publish_id"], "success": True, "errors": errors}
            rid = self.records.create(obj.name, fields, req.user_id, body_type_status=400)
            return {"id": rid, "success": True, "errors": []}

        return Response(200, self._each(records, create_one, all_or_none))

    def update(self, req: Request) -> Response:
        records, all_or_none = self._body(req)

        def update_one(record: object) -> dict:
            assert isinstance(record, dict)
            record_id = next((v for k, v in record.items() if k.lower() == "id"), None)
            if record_id in (None, ""):
                raise ApiError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
            obj = _record_type(self.app.schema.get, record)
            rid = self.records.update(obj.name, record_id, record, req.user_id)  # type: ignore[arg-type]
            return {"id": rid, "success": True, "errors": []}

        return Response(200, self._each(records, update_one, all_or_none))

    def upsert(self, req: Request) -> Response:
        if float(req.api_version) < UPSERT_COLLECTION_SINCE:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        obj = self.records.sobject(req.match["sobject"])
        ext = obj.external_id_field(req.match["field"])
        if ext is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        records, all_or_none = self._body(req)

        def upsert_one(record: object) -> dict:
            assert isinstance(record, dict)
            if _record_type(self.app.schema.get, record) is not obj:
                raise ApiError(400, "INVALID_TYPE", f"Every record must be of type {obj.name} in this call")
            fields = {k: v for k, v in record.items() if k != "attributes"}
            value = next((v for k, v in fields.items() if k.lower() == ext.name.lower()), None)
            if ext.name == "Id":
                fields = {k: v for k, v in fields.items() if k.lower() != "id"}
            elif value in (None, ""):
                raise ApiError(400, "MISSING_ARGUMENT", f"{ext.name} not specified", [ext.name])
            result = self.records.upsert(obj.name, ext.name, "" if value is None else str(value), fields,
                                         req.user_id)
            return {"id": result.id, "success": True, "errors": [], "created": result.created}

        return Response(200, self._each(records, upsert_one, all_or_none))

    def delete(self, req: Request) -> Response:
        raw = req.query.get("ids")
        record_ids = [i.strip() for i in (raw or "").split(",") if i.strip()]
        if not record_ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids is required: a comma-separated list of record ids")
        if len(record_ids) > MAX_COLLECTION_RECORDS:
            raise _too_many_records(MAX_COLLECTION_RECORDS)
        flag = req.query.get("allOrNone", "false").lower()
        if flag not in ("true", "false"):
            raise _malformed(f"allOrNone must be true or false, got {req.query['allOrNone']}")

        def delete_one(record_id: object) -> dict:
            rid = self.records.delete(None, str(record_id), req.user_id)
            return {"id": rid, "success": True, "errors": []}

        return Response(200, self._each(record_ids, delete_one, flag == "true"))

    def retrieve(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        if req.method == "POST":
            body = req.json()
            if not isinstance(body, dict):
                raise _malformed("The request body must be a JSON object with ids and fields arrays")
            record_ids, fields = body.get("ids"), body.get("fields")
            if not (isinstance(record_ids, list) and all(isinstance(i, str) for i in record_ids)
                    and isinstance(fields, list) and all(isinstance(f, str) for f in fields)):
                raise _malformed("ids and fields must be arrays of strings")
        else:
            record_ids = [i.strip() for i in req.query.get("ids", "").split(",") if i.strip()]
            fields = [f.strip() for f in req.query.get("fields", "").split(",") if f.strip()]
        if not record_ids or not fields:
            raise ApiError(400, "MISSING_ARGUMENT", "ids and fields are both required")
        if len(record_ids) > MAX_RETRIEVE_IDS:
            raise _too_many_records(MAX_RETRIEVE_IDS)
        for name in fields:
            if obj.field(name) is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'.", [name])
        found: list[dict | None] = []
        for record_id in record_ids:
            if not ids.is_well_formed(record_id):
                raise malformed_id(record_id)
            record = self.app.store.get(ids.to18(record_id))
            live = record is not None and not record.get("IsDeleted") and record["attributes_type"] == obj.name
            found.append(self.records.public(record, req.api_version, fields) if live else None)  # type: ignore[arg-type]
        return Response(200, found)


# -- sObject Tree -----------------------------------------------------------------------------------

@dataclass
class _TreeNode:
    reference_id: str
    obj: SObjectType
    fields: dict
    parent: int | None = None  # index of the parent node
    lookup: str | None = None  # field on this record that points at the parent
    error: ApiError | None = None
    children: list[int] = field(default_factory=list)


def _tree_failure(results: list[dict]) -> Response:
    return Response(400, {"hasErrors": True, "results": results})


class Tree:
    """``POST /composite/tree/{SObject}``: insert a forest of parents with nested children, all or nothing."""

    def __init__(self, app: EmulatorApp):
        self.app = app

    def _child_relationship(self, obj: SObjectType, key: str) -> tuple[SObjectType, str] | None:
        for child, lookup, relationship in obj.children:
            if relationship.lower() == key.lower():
                child_obj = self.app.schema.get(child)
                assert child_obj is not None
                return child_obj, lookup
        return None

    def _walk(self, records: object, obj: SObjectType, depth: int, parent: int | None, lookup: str | None,
              nodes: list[_TreeNode], where: str) -> None:
        if depth > MAX_TREE_DEPTH:
            raise ApiError(400, "LIMIT_EXCEEDED", f"A tree can be at most {MAX_TREE_DEPTH} levels deep")
        if not isinstance(records, list) or not records:
            raise _malformed(f"{where} must be a non-empty array of records")
        for record in records:
            if len(nodes) >= MAX_TREE_RECORDS:
                raise _too_many_records(MAX_TREE_RECORDS)
            if not isinstance(record, dict):
                raise _malformed(f"{where} must contain only JSON objects")
            attrs = record.get("attributes")
            ref = attrs.get("referenceId") if isinstance(attrs, dict) else None
            if not isinstance(ref, str) or not ref:
                raise _malformed(f"Every record in {where} needs attributes.referenceId")
            if not _REFERENCE_ID.match(ref):
                raise _malformed(f"Invalid referenceId '{ref}': use only letters, numbers and underscores")
            node = _TreeNode(ref, obj, {}, parent, lookup)
            declared = attrs.get("type")  # type: ignore[union-attr]
            if not isinstance(declared, str) or self.app.schema.get(declared) is not obj:
                node.error = ApiError(400, "INVALID_TYPE",
                                      f"attributes.type of {ref} must be {obj.name}, got {json.dumps(declared)}")
            index = len(nodes)
            nodes.append(node)
            if parent is not None:
                nodes[parent].children.append(index)
            for key, value in record.items():
                if key == "attributes":
                    continue
                child = self._child_relationship(obj, key) if isinstance(value, dict) else None
                if child is None:
                    node.fields[key] = value
                    continue
                if set(value) != {"records"}:
                    raise _malformed(f"{ref}.{key} must be an object with only a records array")
                self._walk(value["records"], child[0], depth + 1, index, child[1], nodes, f"{ref}.{key}.records")

    def insert(self, req: Request) -> Response:
        obj = self.app.records.sobject(req.match["sobject"])
        body = req.json()
        if not isinstance(body, dict) or "records" not in body:
            raise _malformed("The request body must be a JSON object with a records array")
        nodes: list[_TreeNode] = []
        self._walk(body["records"], obj, 1, None, None, nodes, "records")
        if len({n.obj.name for n in nodes}) > MAX_TREE_TYPES:
            raise ApiError(400, "LIMIT_EXCEEDED", f"A tree can hold at most {MAX_TREE_TYPES} different types")
        counts: dict[str, int] = {}
        for node in nodes:
            counts[node.reference_id] = counts.get(node.reference_id, 0) + 1
        duplicates = [n.reference_id for n in nodes if counts[n.reference_id] > 1]
        if duplicates:  # one result per instance of a duplicated reference id [doc]
            return _tree_failure([{"referenceId": ref, "errors": [{
                "statusCode": "INVALID_INPUT",  # [unconfirmed] statusCode
                "message": f"Duplicate ReferenceId provided in the request: {ref}", "fields": []}]}
                for ref in duplicates])

        created: dict[int, str] = {}
        failures: list[dict] = []
        store = self.app.store
        try:
            with store.transaction():
                for index, node in enumerate(nodes):
                    if node.parent is not None and node.parent not in created:
                        continue  # its parent failed; the parent's error is the one reported
                    fields = dict(node.fields)
                    if node.lookup and node.parent is not None:
                        fields[node.lookup] = created[node.parent]
                    try:
                        if node.error is not None:
                            raise node.error
                        with store.transaction():
                            created[index] = self.app.records.create(node.obj.name, fields, req.user_id,
                                                                     body_type_status=400)
                    except ApiError as exc:
                        failures.append({"referenceId": node.reference_id, "errors": [exc.collection_error()]})
                if failures:
                    raise _RollBack
        except _RollBack:
            return _tree_failure(failures)
        return Response(201, {"hasErrors": False, "results": [
            {"referenceId": node.reference_id, "id": created[i]} for i, node in enumerate(nodes)]})


# -- /composite and /composite/graph ----------------------------------------------------------------

class Composite:
    def __init__(self, app: EmulatorApp):
        self.app = app
        self.runner = CompositeRunner(app)

    def composite(self, req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise _malformed("The request body must be a JSON object with a compositeRequest array")
        if "compositeRequest" not in body:
            raise _malformed("compositeRequest is required")
        all_or_none = _flag(body.get("allOrNone"), "allOrNone")
        _flag(body.get("collateSubrequests"), "collateSubrequests")
        items = body["compositeRequest"]
        if isinstance(items, list) and len(items) > MAX_SUBREQUESTS:
            raise ApiError(400, "LIMIT_EXCEEDED",  # [unconfirmed] errorCode; the limit is documented
                           f"A composite request can contain at most {MAX_SUBREQUESTS} subrequests; "
                           f"this one has {len(items)}")
        subs = parse_subrequests(items)
        limited = sum(1 for s in subs if s.resource in _LIMITED_RESOURCES)
        if limited > MAX_QUERY_OR_COLLECTION_SUBREQUESTS:
            raise ApiError(400, "LIMIT_EXCEEDED",
                           f"A composite request can contain at most {MAX_QUERY_OR_COLLECTION_SUBREQUESTS} "
                           f"query, queryAll or sObject Collections subrequests; this one has {limited}")
        entries, _ok = self.runner.run(subs, all_or_none, req.user_id or "")
        return Response(200, {"compositeResponse": entries})

    def graph(self, req: Request) -> Response:
        if float(req.api_version) < GRAPH_SINCE:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        body = req.json()
        graphs = body.get("graphs") if isinstance(body, dict) else None
        if not isinstance(graphs, list) or not graphs:
            raise _malformed("graphs is required and must be a non-empty array")
        if len(graphs) > MAX_GRAPHS:
            raise ApiError(400, "LIMIT_EXCEEDED", f"A request can contain at most {MAX_GRAPHS} graphs")
        parsed: list[tuple[str, list[Subrequest]]] = []
        seen: set[str] = set()
        for index, graph in enumerate(graphs):
            graph_id = graph.get("graphId") if isinstance(graph, dict) else None
            if not isinstance(graph_id, str) or not graph_id:
                raise _malformed(f"graphs[{index}]: graphId is required")
            if graph_id in seen:
                raise _malformed(f"Duplicate graphId '{graph_id}'")
            seen.add(graph_id)
            parsed.append((graph_id, parse_subrequests(graph.get("compositeRequest"), graph=True)))
        nodes = sum(len(subs) for _, subs in parsed)
        if nodes > MAX_GRAPH_NODES:
            raise ApiError(400, "LIMIT_EXCEEDED", f"A request can contain at most {MAX_GRAPH_NODES} graph nodes")
        out: list[dict] = []
        failures = 0
        for graph_id, subs in parsed:
            if failures > MAX_GRAPH_FAILURES:
                entries, ok = [_halted(s) for s in subs], False
            else:
                entries, ok = self.runner.run(subs, True, req.user_id or "")
            failures += not ok
            out.append({"graphId": graph_id, "graphResponse": {"compositeResponse": entries}, "isSuccessful": ok})
        return Response(200, {"graphs": out})


def register(router: Router, app: EmulatorApp) -> None:
    composite, collections, tree = Composite(app), Collections(app), Tree(app)
    router.api("POST", r"composite/?", composite.composite)
    router.api("POST", r"composite/graph/?", composite.graph)
    router.api("POST", r"composite/sobjects/?", collections.create)
    router.api("PATCH", r"composite/sobjects/?", collections.update)
    router.api("DELETE", r"composite/sobjects/?", collections.delete)
    router.api("GET", r"composite/sobjects/(?P<sobject>\w+)/?", collections.retrieve)
    router.api("POST", r"composite/sobjects/(?P<sobject>\w+)/?", collections.retrieve)
    router.api("PATCH", r"composite/sobjects/(?P<sobject>\w+)/(?P<field>\w+)/?", collections.upsert)
    router.api("POST", r"composite/tree/(?P<sobject>\w+)/?", tree.insert)
