"""REST API core: versions, describe, sObject CRUD and upsert, query/queryAll with paging, limits."""

from __future__ import annotations

import collections
import datetime as dt
import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import unquote

from . import ids, soql
from .errors import ApiError
from .http import Request, Response, Router
from .values import format_datetime, parse_datetime, utc_now

if TYPE_CHECKING:
    from .app import EmulatorApp

UPSERT_BODY_SINCE = 46.0  # from this version an upsert that updates answers 200 with a body
ENQUEUED_SINCE = 62.0  # assumption (reference marks the first version unconfirmed): publish results
# carry an OPERATION_ENQUEUED entry in errors from the version whose docs first show it (v62).
_BATCH_SIZE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


class StoreSource:
    """The store seen as a SOQL RecordSource."""

    def __init__(self, app: EmulatorApp):
        self._store = app.store

    def scan(self, sobject: str, include_deleted: bool):
        return self._store.scan(sobject, include_deleted)

    def get(self, record_id: str):
        return self._store.get(record_id)


class Cursors:
    """Open query locators: the remaining rows of a query, served page by page."""

    def __init__(self, limit: int = 200):
        self._open: collections.OrderedDict[str, tuple[list[dict], int]] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._serial = 0
        self._limit = limit

    def open(self, rows: list[dict]) -> str:
        with self._lock:
            self._serial += 1
            locator = ids.case_safe(f"01g000000{self._serial:06d}")
            self._open[locator] = (rows, len(rows))
            while len(self._open) > self._limit:
                self._open.popitem(last=False)
            return locator

    def rows(self, locator: str) -> list[dict] | None:
        with self._lock:
            entry = self._open.get(locator)
            return entry[0] if entry else None


class Rest:
    def __init__(self, app: EmulatorApp):
        self.app = app
        self.records = app.records
        self.cursors = Cursors()
        self.source = StoreSource(app)

    # -- discovery -------------------------------------------------------------------------------

    def versions(self, req: Request) -> Response:
        from .app import SUPPORTED_VERSIONS, release_label

        return Response(200, [{"label": release_label(v), "url": f"/services/data/v{v}", "version": v}
                              for v in SUPPORTED_VERSIONS])

    def resources(self, req: Request) -> Response:
        base = f"/services/data/v{req.api_version}"
        names = ["sobjects", "query", "queryAll", "composite", "limits", "jobs"]
        return Response(200, {name: f"{base}/{name}" for name in names})

    def describe_global(self, req: Request) -> Response:
        return Response(200, {"encoding": "UTF-8", "maxBatchSize": 200,
                              "sobjects": [o.describe_global_entry(req.api_version)
                                           for o in self.app.schema.objects()]})

    def sobject_info(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        return Response(200, {"objectDescribe": obj.describe_global_entry(req.api_version), "recentItems": []})

    def describe(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        return Response(200, obj.describe(req.api_version))

    def limits(self, req: Request) -> Response:
        used, limit = self.app.api_usage()
        return Response(200, {
            "DailyApiRequests": {"Max": limit, "Remaining": max(limit - used, 0)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "HourlyPublishedPlatformEvents": {"Max": 250000, "Remaining": 250000},
            "DataStorageMB": {"Max": 5, "Remaining": 5},
        })

    # -- single records --------------------------------------------------------------------------

    def create(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        body = req.json()
        if obj.is_event:
            event = self.app.events.publish(obj, body, req.user_id)  # type: ignore[attr-defined]
            errors = []
            if float(req.api_version or "0") >= ENQUEUED_SINCE:
                errors = [{"statusCode": "OPERATION_ENQUEUED", "message": event["EventUuid"], "fields": []}]
            return Response(201, {"id": event["publish_id"], "success": True, "errors": errors})
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
        rid = self.records.create(obj.name, body, req.user_id)
        return Response(201, {"id": rid, "success": True, "errors": []},
                        headers={"Location": f"/services/data/v{req.api_version}/sobjects/{obj.name}/{rid}"})

    def _single_id(self, raw: str) -> str:
        value = unquote(raw)
        if not (len(value) in (15, 18) and value.isalnum()):
            raise ApiError(404, "NOT_FOUND",
                           f"Provided external ID field does not exist or is not accessible: {value}")
        return value

    def get(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        record = self.records.find(obj, self._single_id(req.match["id"]))
        fields = [f.strip() for f in req.query["fields"].split(",") if f.strip()] if req.query.get("fields") else None
        return Response(200, self.records.public(record, req.api_version, fields))

    def update(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
        self.records.update(obj.name, self._single_id(req.match["id"]), body, req.user_id)
        return Response(204)

    def delete(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        self.records.delete(obj.name, self._single_id(req.match["id"]), req.user_id)
        return Response(204)

    # -- by external id --------------------------------------------------------------------------

    def _matches(self, req: Request) -> tuple:
        obj = self.records.sobject(req.match["sobject"])
        field = obj.external_id_field(req.match["field"])
        if field is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        value = unquote(req.match["value"])
        return obj, field, value, self.records.find_by_external_id(obj, field.name, value)

    def _multiple(self, req: Request, obj, matches: list[dict]) -> Response:
        return Response(300, [f"/services/data/v{req.api_version}/sobjects/{obj.name}/{m['Id']}" for m in matches])

    def get_by_external_id(self, req: Request) -> Response:
        obj, _field, _value, matches = self._matches(req)
        if not matches:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(matches) > 1:
            return self._multiple(req, obj, matches)
        return Response(200, self.records.public(matches[0], req.api_version))

    def upsert(self, req: Request) -> Response:
        obj, field, value, matches = self._matches(req)
        if len(matches) > 1:
            return self._multiple(req, obj, matches)
        body = req.json()
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object of field values")
        if not matches and req.query.get("updateOnly", "").lower() == "true":
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        result = self.records.upsert(obj.name, field.name, value, body, req.user_id)
        if result.created:
            return Response(201, {"id": result.id, "success": True, "errors": [], "created": True})
        if float(req.api_version) < UPSERT_BODY_SINCE:
            return Response(204)
        return Response(200, {"id": result.id, "success": True, "errors": [], "created": False})

    def delete_by_external_id(self, req: Request) -> Response:
        obj, _field, _value, matches = self._matches(req)
        if not matches:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if len(matches) > 1:
            return self._multiple(req, obj, matches)
        self.records.delete(obj.name, matches[0]["Id"], req.user_id)
        return Response(204)

    def create_by_id_path(self, req: Request) -> Response:
        """``POST /sobjects/X/Id`` with no value creates a record (API 37.0+)."""
        return self.create(req)

    # -- updated / deleted -----------------------------------------------------------------------

    def _window(self, req: Request) -> tuple[dt.datetime, dt.datetime]:
        start = parse_datetime(req.query.get("start", ""))
        end = parse_datetime(req.query.get("end", ""))
        if start is None or end is None:
            raise ApiError(400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 date-times")
        if end < start:
            raise ApiError(400, "INVALID_REPLICATION_DATE", "end must be after start")
        return start, end

    def updated(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        start, end = self._window(req)
        found = [r["Id"] for r in self.app.store.scan(obj.name)
                 if start <= parse_datetime(r["SystemModstamp"]) <= end]  # type: ignore[operator]
        return Response(200, {"ids": found, "latestDateCovered": format_datetime(min(end, utc_now()))})

    def deleted(self, req: Request) -> Response:
        obj = self.records.sobject(req.match["sobject"])
        start, end = self._window(req)
        found = [{"id": r["Id"], "deletedDate": r["SystemModstamp"]}
                 for r in self.app.store.scan(obj.name, include_deleted=True)
                 if r.get("IsDeleted") and start <= parse_datetime(r["SystemModstamp"]) <= end]  # type: ignore[operator]
        return Response(200, {"deletedRecords": found, "earliestDateAvailable": "2020-01-01T00:00:00.000+0000",
                               "latestDateCovered": format_datetime(min(end, utc_now()))})

    # -- query -----------------------------------------------------------------------------------

    def _batch_size(self, req: Request) -> int:
        m = _BATCH_SIZE.search(req.header("sforce-query-options") or "")
        if not m:
            return 2000
        return min(max(int(m.group(1)), 200), 2000)

    def _query(self, req: Request, include_deleted: bool) -> Response:
        text = req.query.get("q")
        if text is None or not text.strip():
            raise ApiError(400, "MALFORMED_QUERY", "A query string (q) is required")
        query = soql.parse(text, self.app.schema)
        total, rows = soql.execute(query, self.source, include_deleted=include_deleted,
                                   api_version=req.api_version)
        if query.is_count:
            return Response(200, {"totalSize": total, "done": True, "records": []})
        return self._page(req, rows, 0, total, include_deleted)

    def _page(self, req: Request, rows: list[dict], start: int, total: int, include_deleted: bool,
              locator: str | None = None) -> Response:
        size = self._batch_size(req)
        page = rows[start:start + size]
        body: dict = {"totalSize": total, "done": start + size >= len(rows), "records": page}
        if not body["done"]:
            locator = locator or self.cursors.open(rows)
            resource = "queryAll" if include_deleted else "query"
            body["nextRecordsUrl"] = f"/services/data/v{req.api_version}/{resource}/{locator}-{start + size}"
        # Salesforce puts totalSize, done, nextRecordsUrl, records in this order
        ordered = {"totalSize": body["totalSize"], "done": body["done"]}
        if "nextRecordsUrl" in body:
            ordered["nextRecordsUrl"] = body["nextRecordsUrl"]
        ordered["records"] = body["records"]
        return Response(200, ordered)

    def query(self, req: Request) -> Response:
        return self._query(req, include_deleted=False)

    def query_all(self, req: Request) -> Response:
        return self._query(req, include_deleted=True)

    def query_more(self, req: Request) -> Response:
        locator, _, offset = req.match["locator"].partition("-")
        rows = self.cursors.rows(locator)
        if rows is None or not offset.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        include_deleted = req.path.split("/")[4] == "queryAll"
        return self._page(req, rows, int(offset), len(rows), include_deleted, locator)


def register(router: Router, app: EmulatorApp) -> None:
    rest = Rest(app)
    app.rest = rest  # type: ignore[attr-defined]
    router.add("GET", r"/services/data/?", rest.versions, api=False)
    router.api("GET", r"?", rest.resources)
    router.api("GET", r"limits/?", rest.limits)
    router.api("GET", r"sobjects/?", rest.describe_global)
    s = r"sobjects/(?P<sobject>\w+)"
    router.api("GET", rf"{s}/?", rest.sobject_info)
    router.api("POST", rf"{s}/?", rest.create)
    router.api("GET", rf"{s}/describe/?", rest.describe)
    router.api("GET", rf"{s}/updated/?", rest.updated)
    router.api("GET", rf"{s}/deleted/?", rest.deleted)
    router.api("POST", rf"{s}/Id/?", rest.create_by_id_path)
    router.api("GET", rf"{s}/(?P<id>[^/]+)", rest.get)
    router.api("PATCH", rf"{s}/(?P<id>[^/]+)", rest.update)
    router.api("DELETE", rf"{s}/(?P<id>[^/]+)", rest.delete)
    router.api("GET", rf"{s}/(?P<field>\w+)/(?P<value>[^/]+)", rest.get_by_external_id)
    router.api("PATCH", rf"{s}/(?P<field>\w+)/(?P<value>[^/]+)", rest.upsert)
    router.api("DELETE", rf"{s}/(?P<field>\w+)/(?P<value>[^/]+)", rest.delete_by_external_id)
    router.api("GET", r"query/?", rest.query)
    router.api("GET", r"queryAll/?", rest.query_all)
    router.api("GET", r"query/(?P<locator>01g\w+-\d+)", rest.query_more)
    router.api("GET", r"queryAll/(?P<locator>01g\w+-\d+)", rest.query_more)
