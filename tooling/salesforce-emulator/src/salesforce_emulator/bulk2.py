"""Bulk API 2.0: ingest and query jobs, processed by a background worker as Salesforce's job queue does.

Jobs, uploaded CSV and results live in SQLite tables of their own, so an emulator restarted on the same
state directory still knows its jobs and finishes the ones that were queued or running. Clients poll the
job state, so the worker never blocks a request for longer than one internal batch holds the store.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import itertools
import json
import queue
import re
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import ids, soql
from .errors import ApiError
from .http import Request, Response, Router
from .schema import NUMBER_TYPES, SObjectType
from .values import format_datetime, utc_now

if TYPE_CHECKING:
    from .app import EmulatorApp

INTERNAL_BATCH_SIZE = 10_000  # Salesforce splits ingest data into internal batches of 10,000 records
MAX_UPLOAD_BYTES = 100 * 1024 * 1024  # 150 MB once base64-encoded; simple-salesforce caps raw CSV at 100 MB
DEFAULT_PAGE_SIZE = 50_000  # Salesforce picks the page size when maxRecords is absent; 50,000 is the
# value simple-salesforce asks for by default, so a client that omits it sees the same pages.
QUERY_CHUNK_ROWS = 1_000  # query result lines are stored in chunks so a page reads only what it returns
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
QUERY_OPERATIONS = ("query", "queryAll")
TERMINAL_STATES = ("JobComplete", "Failed", "Aborted")
RUNNABLE_STATES = ("UploadComplete", "InProgress")
_INGEST_SPEC_KEYS = {"object", "operation", "externalIdFieldName", "contentType", "lineEnding", "columnDelimiter",
                     "assignmentRuleId"}
_QUERY_SPEC_KEYS = {"operation", "query", "contentType", "lineEnding", "columnDelimiter"}
_SUBQUERY = re.compile(r"\(\s*select\b", re.IGNORECASE)
_FROM = re.compile(r"\bfrom\b", re.IGNORECASE)

_TABLES = """
CREATE TABLE IF NOT EXISTS bulk2_jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bulk2_uploads (
    job_id TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (job_id, seq));
CREATE TABLE IF NOT EXISTS bulk2_ingest_results (
    job_id TEXT NOT NULL, batch INTEGER NOT NULL, successful BLOB NOT NULL, failed BLOB NOT NULL,
    PRIMARY KEY (job_id, batch));
CREATE TABLE IF NOT EXISTS bulk2_query_chunks (
    job_id TEXT NOT NULL, chunk INTEGER NOT NULL, lines TEXT NOT NULL, PRIMARY KEY (job_id, chunk));
"""

_INGEST_INFO = ("id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
                "externalIdFieldName", "concurrencyMode", "contentType", "apiVersion", "jobType", "contentUrl",
                "lineEnding", "columnDelimiter")
_INGEST_PROGRESS = ("numberRecordsProcessed", "numberRecordsFailed", "retries", "totalProcessingTime",
                    "apiActiveProcessingTime", "apexProcessingTime")
_QUERY_INFO = ("id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
               "concurrencyMode", "contentType", "apiVersion", "jobType", "lineEnding", "columnDelimiter")
_QUERY_PROGRESS = ("numberRecordsProcessed", "retries", "totalProcessingTime")


# -- errors -------------------------------------------------------------------------------------------
# Salesforce's Bulk API 2.0 error list documents InvalidJob, InvalidJobState and InvalidBatch; the REST
# envelope upper-cases them ([{"errorCode":"INVALIDJOB","message":"InvalidJob : ..."}]). Which exact code
# each case gets is [unconfirmed]; the emulator uses the documented meaning of each name.

def _invalid_job(message: str) -> ApiError:
    return ApiError(400, "INVALIDJOB", f"InvalidJob : {message}")


def _invalid_state(message: str) -> ApiError:
    return ApiError(400, "INVALIDJOBSTATE", f"InvalidJobState : {message}")


def _invalid_batch(message: str) -> ApiError:
    return ApiError(400, "INVALIDBATCH", f"InvalidBatch : {message}")


def _not_in_bulk_query(what: str) -> ApiError:
    # Wording after "Aggregate Relationships not supported in Bulk V2 Query with CSV content type."
    # (OpenFn/adaptors#395); the code FUNCTIONALITY_NOT_ENABLED is what Bulk 1.0 reports for features its
    # query does not support [unconfirmed for 2.0].
    return ApiError(400, "FUNCTIONALITY_NOT_ENABLED", f"{what} not supported in Bulk V2 Query with CSV content type.")


def _now() -> str:
    return format_datetime(utc_now())


def _error_text(exc: ApiError) -> str:
    """sf__Error as ``CODE:message:fields --``; the shape with trailing `` --`` is [unconfirmed]."""
    fields = f":{','.join(exc.fields)}" if exc.fields else ""
    return f"{exc.error_code}:{exc.message}{fields} --"


def _encode_locator(offset: int) -> str:
    """Salesforce's locators look like ``MTAwMDA``: base64 of the next row offset, without padding."""
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _decode_locator(locator: str) -> int | None:
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return int(text) if text.isdigit() else None


def _csv_value(value: object, ftype: str | None) -> str:
    """One query result cell: null is empty, booleans true/false, numbers without exponent notation."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if ftype == "int" and isinstance(value, (int, float)):
        return str(int(value))
    if ftype in NUMBER_TYPES and isinstance(value, (int, float)):
        # Doubles print Java-style with a decimal point (1000.0) but in plain notation [unconfirmed].
        return format(Decimal(repr(float(value))), "f")
    if ftype == "datetime" and isinstance(value, str) and value.endswith("+0000"):
        return value[:-5] + "Z"  # Bulk CSV writes UTC datetimes with a Z, unlike REST JSON [unconfirmed]
    return str(value)


def _writer(out: io.StringIO, info: dict) -> Any:
    """Result CSV uses the job's delimiter and line ending and quotes every value, as Salesforce does."""
    return csv.writer(out, delimiter=DELIMITERS[info["columnDelimiter"]],
                      lineterminator=LINE_ENDINGS[info["lineEnding"]], quoting=csv.QUOTE_ALL)


def _decode_upload(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid_batch(f"The CSV data is not valid UTF-8 (byte {exc.start})") from None
    return text.removeprefix("\ufeff")


def _header(text: str, delimiter: str) -> list[str]:
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True), [])
    except csv.Error as exc:
        raise _invalid_batch(f"The header row is not valid CSV: {exc}") from None
    header = [name.strip() for name in header]
    if not any(header):
        raise _invalid_batch("The CSV data has no header row")
    return header


def _spec_value(spec: dict, key: str, allowed: tuple[str, ...] | dict, default: str) -> str:
    value = spec.get(key, default)
    if not isinstance(value, str) or value not in allowed:
        raise _invalid_job(f"Invalid {key}: {value!r}; expected one of {', '.join(allowed)}")
    return value


class Bulk2:
    """The ingest and query job resources and the worker that processes closed jobs in order."""

    def __init__(self, app: EmulatorApp):
        self.app = app
        self.store = app.store
        self.store.executescript(_TABLES)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        for job_id, info in self.store.execute("SELECT id, info FROM bulk2_jobs ORDER BY rowid"):
            if json.loads(info)["state"] in RUNNABLE_STATES:  # queued or running when the emulator stopped
                self._queue.put(job_id)
        self._worker = threading.Thread(target=self._work, name="bulk2-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Let the current internal batch commit, then end the worker (Emulator.stop joins it)."""
        self._stop.set()
        self._queue.put(None)
        self._worker.join(timeout=60)

    # -- job records -----------------------------------------------------------------------------

    def _load(self, job_id: str, kind: str) -> dict:
        if ids.is_well_formed(job_id):
            job_id = ids.to18(job_id)
        rows = self.store.execute("SELECT info FROM bulk2_jobs WHERE id = ? AND kind = ?", (job_id, kind))
        if not rows:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return json.loads(rows[0][0])

    def _save(self, info: dict) -> None:
        info["systemModstamp"] = _now()
        self.store.execute("UPDATE bulk2_jobs SET info = ? WHERE id = ?", (json.dumps(info), info["id"]))

    def _list(self, kind: str) -> list[dict]:
        rows = self.store.execute("SELECT info FROM bulk2_jobs WHERE kind = ? ORDER BY rowid", (kind,))
        return [json.loads(info) for (info,) in rows]

    @staticmethod
    def _public(info: dict, *, progress: bool) -> dict:
        ingest = info["jobType"] == "V2Ingest"
        keys = _INGEST_INFO if ingest else _QUERY_INFO
        if progress:
            keys = keys + (_INGEST_PROGRESS if ingest else _QUERY_PROGRESS)
        out = {key: info[key] for key in keys if key in info}
        if info.get("errorMessage"):
            out["errorMessage"] = info["errorMessage"]
        return out

    def _spec(self, req: Request, allowed: set[str]) -> dict:
        spec = req.json()
        if not isinstance(spec, dict):
            raise _invalid_job("The request body must be a JSON object describing the job")
        unknown = sorted(set(spec) - allowed)
        if unknown:  # Salesforce's JSON binding rejects unknown properties [unconfirmed wording]
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unrecognized field \"{unknown[0]}\"")
        content_type = spec.get("contentType", "CSV")
        if content_type != "CSV":
            raise _invalid_job(f"Invalid contentType: {content_type!r}; only CSV is supported")
        return spec

    def _new_job(self, kind: str, info: dict) -> None:
        self.store.execute("INSERT INTO bulk2_jobs (id, kind, info) VALUES (?, ?, ?)",
                           (info["id"], kind, json.dumps(info)))

    def _set_state(self, req: Request, kind: str, allowed: tuple[str, ...]) -> Response:
        spec = req.json()
        wanted = spec.get("state") if isinstance(spec, dict) else None
        if wanted not in allowed:
            raise _invalid_state(f"Invalid state {wanted!r}; a job can be set to {' or '.join(allowed)}")
        with self.store.transaction():
            info = self._load(req.match["job"], kind)
            current = info["state"]
            if wanted == "UploadComplete" and current != "Open":
                raise _invalid_state(f"Job {info['id']} is {current}; only an Open job can be closed")
            if wanted == "Aborted" and current in TERMINAL_STATES:
                raise _invalid_state(f"Job {info['id']} is already {current}")
            info["state"] = wanted
            self._save(info)
        if wanted == "UploadComplete":
            self._queue.put(info["id"])
        return Response(200, self._public(info, progress=False))

    def _delete(self, req: Request, kind: str) -> Response:
        with self.store.transaction():
            info = self._load(req.match["job"], kind)
            if info["state"] not in TERMINAL_STATES:
                raise _invalid_state(f"Job {info['id']} is {info['state']}; only a finished job can be deleted "
                                     f"(abort it first)")
            for statement in ("DELETE FROM bulk2_jobs WHERE id = ?", "DELETE FROM bulk2_uploads WHERE job_id = ?",
                              "DELETE FROM bulk2_ingest_results WHERE job_id = ?",
                              "DELETE FROM bulk2_query_chunks WHERE job_id = ?"):
                self.store.execute(statement, (info["id"],))
        return Response(204)

    # -- ingest resources ------------------------------------------------------------------------

    def create_ingest(self, req: Request) -> Response:
        spec = self._spec(req, _INGEST_SPEC_KEYS)
        operation = _spec_value(spec, "operation", INGEST_OPERATIONS, "")
        name = spec.get("object")
        if not isinstance(name, str) or not name:
            raise _invalid_job("object is required")
        obj = self.app.schema.get(name)
        if obj is None:
            raise _invalid_job(f"Unable to find object: {name}")
        if obj.is_event and operation != "insert":
            raise _invalid_job(f"Operation {operation} is not supported for platform event {obj.name}; use insert")
        info: dict = {"id": self.app.id_factory.new("750"), "operation": operation, "object": obj.name,
                      "createdById": req.user_id, "createdDate": _now(), "systemModstamp": _now(), "state": "Open"}
        if operation == "upsert":
            ext = spec.get("externalIdFieldName")
            if not isinstance(ext, str) or not ext:
                raise _invalid_job("externalIdFieldName is required for upsert")
            field = obj.external_id_field(ext)
            if field is None:
                raise _invalid_job(f"Field name provided, {ext} does not match an External ID, Salesforce Id, or "
                                   f"indexed field for {obj.name}")
            info["externalIdFieldName"] = field.name
        line_ending = _spec_value(spec, "lineEnding", LINE_ENDINGS, "LF")
        delimiter = _spec_value(spec, "columnDelimiter", DELIMITERS, "COMMA")
        info.update({
            "concurrencyMode": "Parallel", "contentType": "CSV", "apiVersion": float(req.api_version),
            "jobType": "V2Ingest",
            "contentUrl": f"services/data/v{req.api_version}/jobs/ingest/{info['id']}/batches",
            "lineEnding": line_ending, "columnDelimiter": delimiter,
            "numberRecordsProcessed": 0, "numberRecordsFailed": 0, "retries": 0, "totalProcessingTime": 0,
            "apiActiveProcessingTime": 0, "apexProcessingTime": 0, "_uploads": 0, "_columns": None,
            "_batches": 0,
        })
        self._new_job("ingest", info)
        return Response(200, self._public(info, progress=False))

    def upload(self, req: Request) -> Response:
        """Each PUT appends a CSV file; every file repeats the same header row."""
        info = self._load(req.match["job"], "ingest")
        if info["state"] != "Open":
            raise _invalid_state(f"Job {info['id']} is {info['state']}; data can only be uploaded to an Open job")
        if len(req.body) > MAX_UPLOAD_BYTES:
            raise _invalid_batch(f"The upload is {len(req.body)} bytes; the limit is {MAX_UPLOAD_BYTES} bytes "
                                 f"(100 MB) per request")
        text = _decode_upload(req.body)
        header = _header(text, DELIMITERS[info["columnDelimiter"]])
        with self.store.transaction():
            info = self._load(info["id"], "ingest")
            if info["state"] != "Open":
                raise _invalid_state(f"Job {info['id']} is {info['state']}; data can only be uploaded to an Open job")
            if info["_columns"] is None:
                info["_columns"] = header
            elif [c.lower() for c in header] != [c.lower() for c in info["_columns"]]:
                # Salesforce documents one header for the whole job; rejecting a different one at upload
                # time (rather than failing the job later) is the emulator's choice [unconfirmed].
                raise _invalid_batch(f"The header row {header} differs from the job's header row "
                                     f"{info['_columns']}; every upload must repeat the same columns")
            info["_uploads"] += 1
            self.store.execute("INSERT INTO bulk2_uploads (job_id, seq, data) VALUES (?, ?, ?)",
                               (info["id"], info["_uploads"], text.encode("utf-8")))
            self._save(info)
        return Response(201)

    def close_or_abort_ingest(self, req: Request) -> Response:
        return self._set_state(req, "ingest", ("UploadComplete", "Aborted"))

    def ingest_info(self, req: Request) -> Response:
        return Response(200, self._public(self._load(req.match["job"], "ingest"), progress=True))

    def list_ingest(self, req: Request) -> Response:
        records = [self._public(info, progress=False) for info in self._list("ingest")]
        return Response(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def delete_ingest(self, req: Request) -> Response:
        return self._delete(req, "ingest")

    def _csv(self, info: dict, header: list[str], blobs: list[bytes]) -> Response:
        out = io.StringIO()
        _writer(out, info).writerow(header)
        body = out.getvalue().encode("utf-8") + b"".join(bytes(b) for b in blobs)
        return Response(200, body, content_type="text/csv")

    def successful_results(self, req: Request) -> Response:
        info = self._load(req.match["job"], "ingest")
        rows = self.store.execute("SELECT successful FROM bulk2_ingest_results WHERE job_id = ? ORDER BY batch",
                                  (info["id"],))
        return self._csv(info, ["sf__Id", "sf__Created", *(info["_columns"] or [])], [r[0] for r in rows])

    def failed_results(self, req: Request) -> Response:
        info = self._load(req.match["job"], "ingest")
        rows = self.store.execute("SELECT failed FROM bulk2_ingest_results WHERE job_id = ? ORDER BY batch",
                                  (info["id"],))
        return self._csv(info, ["sf__Id", "sf__Error", *(info["_columns"] or [])], [r[0] for r in rows])

    def unprocessed_records(self, req: Request) -> Response:
        """Rows an aborted or failed job never reached, with the original columns only."""
        info = self._load(req.match["job"], "ingest")
        out = io.StringIO()
        if info["state"] in ("Aborted", "Failed") and info["_columns"]:
            writer = _writer(out, info)
            for row in itertools.islice(self._rows(info), info["numberRecordsProcessed"], None):
                writer.writerow(row)
        return self._csv(info, info["_columns"] or [], [out.getvalue().encode("utf-8")])

    # -- query resources -------------------------------------------------------------------------

    def _parse_query(self, text: str) -> soql.Query:
        select_list = _FROM.split(text, maxsplit=1)[0]
        if _SUBQUERY.search(select_list):
            raise _not_in_bulk_query("Aggregate Relationships")  # parent-to-child subqueries
        query = soql.parse(text, self.app.schema)
        if query.is_count:
            raise _not_in_bulk_query("Aggregate queries (COUNT())")
        if query.offset is not None:
            raise _not_in_bulk_query("OFFSET")
        return query

    def create_query(self, req: Request) -> Response:
        spec = self._spec(req, _QUERY_SPEC_KEYS)
        operation = _spec_value(spec, "operation", QUERY_OPERATIONS, "")
        text = spec.get("query")
        if not isinstance(text, str) or not text.strip():
            raise _invalid_job("query is required for a query job")
        line_ending = _spec_value(spec, "lineEnding", LINE_ENDINGS, "LF")
        delimiter = _spec_value(spec, "columnDelimiter", DELIMITERS, "COMMA")
        query = self._parse_query(text)  # SOQL errors surface at creation, as MALFORMED_QUERY etc.
        info = {"id": self.app.id_factory.new("750"), "operation": operation, "object": query.sobject.name,
                "createdById": req.user_id, "createdDate": _now(), "systemModstamp": _now(),
                "state": "UploadComplete", "concurrencyMode": "Parallel", "contentType": "CSV",
                "apiVersion": float(req.api_version), "jobType": "V2Query", "lineEnding": line_ending,
                "columnDelimiter": delimiter, "numberRecordsProcessed": 0, "retries": 0, "totalProcessingTime": 0,
                "_query": text, "_columns": query.columns}
        self._new_job("query", info)
        self._queue.put(info["id"])
        return Response(200, self._public(info, progress=False))

    def query_info(self, req: Request) -> Response:
        return Response(200, self._public(self._load(req.match["job"], "query"), progress=True))

    def list_query(self, req: Request) -> Response:
        records = [self._public(info, progress=False) for info in self._list("query")]
        return Response(200, {"done": True, "records": records, "nextRecordsUrl": None})

    def abort_query(self, req: Request) -> Response:
        return self._set_state(req, "query", ("Aborted",))

    def delete_query(self, req: Request) -> Response:
        return self._delete(req, "query")

    def query_results(self, req: Request) -> Response:
        """One page of CSV; Sforce-Locator names the next page or is the string ``null`` on the last."""
        info = self._load(req.match["job"], "query")
        if info["state"] != "JobComplete":
            raise _invalid_state(f"Job {info['id']} is {info['state']}; results are available once it is "
                                 f"JobComplete")
        if float(req.api_version) != info["apiVersion"]:
            raise ApiError(409, "API_ERROR", f"Results must be requested with the API version that created the "
                                             f"job (v{info['apiVersion']:.1f})")  # 409 per docs; code [unconfirmed]
        raw_max = req.query.get("maxRecords")
        if raw_max is None or raw_max == "":
            size = DEFAULT_PAGE_SIZE
        elif raw_max.isdigit() and int(raw_max) > 0:
            size = int(raw_max)
        else:
            raise ApiError(400, "API_ERROR", f"maxRecords must be a positive integer, not {raw_max!r}")
        total = info["numberRecordsProcessed"]
        start = 0
        locator = req.query.get("locator")
        if locator:
            start = _decode_locator(locator) or 0
            if not 0 < start < total:
                raise ApiError(400, "INVALID_QUERY_LOCATOR", f"Invalid locator: {locator}")
        end = min(start + size, total)
        lines = self._query_lines(info["id"], start, end)
        ending = LINE_ENDINGS[info["lineEnding"]]
        out = io.StringIO()
        _writer(out, info).writerow(info["_columns"])
        body = out.getvalue() + "".join(line + ending for line in lines)
        headers = {"Sforce-NumberOfRecords": str(len(lines)),
                   "Sforce-Locator": _encode_locator(end) if end < total else "null"}
        return Response(200, body.encode("utf-8"), headers=headers, content_type="text/csv")

    def _query_lines(self, job_id: str, start: int, end: int) -> list[str]:
        if end <= start:
            return []
        first, last = start // QUERY_CHUNK_ROWS, (end - 1) // QUERY_CHUNK_ROWS
        rows = self.store.execute(
            "SELECT lines FROM bulk2_query_chunks WHERE job_id = ? AND chunk BETWEEN ? AND ? ORDER BY chunk",
            (job_id, first, last))
        lines = [line for (chunk,) in rows for line in json.loads(chunk)]
        offset = start - first * QUERY_CHUNK_ROWS
        return lines[offset:offset + end - start]

    # -- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None or self._stop.is_set():
                return
            started = time.monotonic()
            try:
                rows = self.store.execute("SELECT kind FROM bulk2_jobs WHERE id = ?", (job_id,))
                if rows and rows[0][0] == "ingest":
                    self._ingest(job_id)
                elif rows:
                    self._query(job_id)
            except Exception as exc:  # a job that breaks fails; the worker lives on for the next one
                print(f"bulk2 worker error on job {job_id}", file=sys.stderr)
                traceback.print_exc()
                try:
                    self._finish(job_id, "Failed", started, f"InternalServerError : {type(exc).__name__}: {exc}")
                except Exception:  # the store may already be closed at shutdown
                    traceback.print_exc()

    def _start(self, job_id: str) -> dict | None:
        """Move a queued job to InProgress; None when it was aborted or deleted while waiting."""
        with self.store.transaction():
            rows = self.store.execute("SELECT info FROM bulk2_jobs WHERE id = ?", (job_id,))
            if not rows:
                return None
            info = json.loads(rows[0][0])
            if info["state"] not in RUNNABLE_STATES:
                return None
            info["state"] = "InProgress"
            self._save(info)
            return info

    def _finish(self, job_id: str, state: str, started: float, error: str | None = None) -> None:
        with self.store.transaction():
            rows = self.store.execute("SELECT info FROM bulk2_jobs WHERE id = ?", (job_id,))
            if not rows:
                return
            info = json.loads(rows[0][0])
            if info["state"] != "InProgress":  # aborted meanwhile: Aborted wins
                return
            info["state"] = state
            if error:
                info["errorMessage"] = error
            self._add_time(info, started)
            self._save(info)

    @staticmethod
    def _add_time(info: dict, started: float) -> None:
        elapsed = int((time.monotonic() - started) * 1000)
        info["totalProcessingTime"] += elapsed
        if "apiActiveProcessingTime" in info:
            info["apiActiveProcessingTime"] += elapsed

    def _pause(self) -> bool:
        """The simulated processing time of one internal batch; False when the emulator is stopping."""
        delay = self.app.settings.bulk_batch_delay_seconds
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()

    # -- ingest processing -----------------------------------------------------------------------

    def _rows(self, info: dict) -> Iterator[list[str]]:
        """The data rows of every upload in order, one upload in memory at a time."""
        delimiter = DELIMITERS[info["columnDelimiter"]]
        for seq in range(1, info["_uploads"] + 1):
            rows = self.store.execute("SELECT data FROM bulk2_uploads WHERE job_id = ? AND seq = ?",
                                      (info["id"], seq))
            reader = csv.reader(io.StringIO(bytes(rows[0][0]).decode("utf-8"), newline=""), delimiter=delimiter,
                                strict=True)
            next(reader, None)
            for row in reader:
                if row:
                    yield row

    def _plan(self, obj: SObjectType, columns: list[str]) -> list[tuple[str, str, str | None]]:
        """How each column maps onto a record: (kind, name, external id field of a relationship column)."""
        plan: list[tuple[str, str, str | None]] = []
        seen: set[str] = set()
        for column in columns:
            if column.lower() in seen:
                raise _invalid_batch(f"Duplicate field name: {column}")
            seen.add(column.lower())
            relationship, dot, key = column.partition(".")
            if dot:  # Account.ERP_Customer_Id__c sets AccountId from the parent's external id
                ref = obj.relationship(relationship)
                parent = self.app.schema.get(ref.reference_to[0]) if ref is not None else None
                parent_key = parent.external_id_field(key) if parent is not None else None
                if ref is None or parent_key is None:
                    raise _invalid_batch(f"Field name not found : {column}")
                plan.append(("ref", ref.relationship_name or ref.name, parent_key.name))
                continue
            field = obj.field(column)
            if field is None:
                # "InvalidBatch : Field name not found : X" fails the job (amp-labs/connectors#118).
                raise _invalid_batch(f"Field name not found : {column}")
            plan.append(("id" if field.name == "Id" else "field", field.name, None))
        return plan

    def _check_data(self, info: dict) -> str | None:
        """Problems that fail the whole job before any row is written, as Salesforce's InvalidBatch and
        ClientInputError job failures do; None when the data can be processed."""
        if info["_uploads"] == 0:
            return "InvalidBatch : No data was uploaded for this job"  # wording [unconfirmed]
        wanted = info["lineEnding"]
        for seq in range(1, info["_uploads"] + 1):
            rows = self.store.execute("SELECT substr(data, 1, 65536) FROM bulk2_uploads WHERE job_id = ? AND seq = ?",
                                      (info["id"], seq))
            head = bytes(rows[0][0])
            newline = head.find(b"\n")
            if newline >= 0 and (head[newline - 1:newline] == b"\r") != (wanted == "CRLF"):
                return f"ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is {wanted}"
        width = len(info["_columns"])
        try:
            for n, row in enumerate(self._rows(info), start=1):
                if len(row) != width:  # a job failure rather than a row failure [unconfirmed]
                    return f"InvalidBatch : Row {n} has {len(row)} values but the header row has {width} columns"
        except csv.Error as exc:
            return f"ClientInputError : The CSV data could not be parsed: {exc}"
        return None

    def _ingest(self, job_id: str) -> None:
        started = time.monotonic()
        info = self._start(job_id)
        if info is None:
            return
        obj = self.app.schema.get(info["object"])
        if obj is None:  # the schema changed between runs of a persistent emulator
            self._finish(job_id, "Failed", started, f"InvalidJob : Unable to find object: {info['object']}")
            return
        problem = self._check_data(info)
        plan: list[tuple[str, str, str | None]] = []
        if problem is None:
            try:
                plan = self._plan(obj, info["_columns"])
            except ApiError as exc:
                problem = exc.message
        if problem is not None:
            self._finish(job_id, "Failed", started, problem)
            return
        rows = itertools.islice(self._rows(info), info["numberRecordsProcessed"], None)
        while True:
            chunk = list(itertools.islice(rows, INTERNAL_BATCH_SIZE))
            if not chunk:
                break
            batch_started = time.monotonic()
            if not self._pause():
                return  # stopping: the job stays InProgress and resumes after a restart
            with self.store.transaction():
                info = self._load(job_id, "ingest")
                if info["state"] != "InProgress":
                    return  # aborted: the rest stays unprocessed
                successful, failed, failures = self._apply_batch(info, obj, plan, chunk)
                info["_batches"] += 1
                self.store.execute("INSERT INTO bulk2_ingest_results (job_id, batch, successful, failed) "
                                   "VALUES (?, ?, ?, ?)", (job_id, info["_batches"], successful, failed))
                info["numberRecordsProcessed"] += len(chunk)
                info["numberRecordsFailed"] += failures
                self._add_time(info, batch_started)
                self._save(info)
        self._finish(job_id, "JobComplete", time.monotonic())

    def _apply_batch(self, info: dict, obj: SObjectType, plan: list[tuple[str, str, str | None]],
                     chunk: list[list[str]]) -> tuple[bytes, bytes, int]:
        """Write one internal batch; each row in its own savepoint so a failure keeps its siblings."""
        ok_out, bad_out = io.StringIO(), io.StringIO()
        ok, bad = _writer(ok_out, info), _writer(bad_out, info)
        id_index = next((i for i, (kind, _, _) in enumerate(plan) if kind == "id"), None)
        failures = 0
        for values in chunk:
            try:
                with self.store.transaction():
                    record_id, created = self._write_row(info, obj, plan, values)
            except ApiError as exc:
                failures += 1
                given = values[id_index] if id_index is not None and info["operation"] != "insert" else ""
                bad.writerow([given, _error_text(exc), *values])
            else:
                ok.writerow([record_id, "true" if created else "false", *values])
        return ok_out.getvalue().encode("utf-8"), bad_out.getvalue().encode("utf-8"), failures

    def _write_row(self, info: dict, obj: SObjectType, plan: list[tuple[str, str, str | None]],
                   values: list[str]) -> tuple[str, bool]:
        operation, user = info["operation"], info["createdById"]
        creating = operation == "insert"
        body: dict = {}
        record_id = ""
        for (kind, name, key), raw in zip(plan, values, strict=True):
            # An empty cell leaves a field as it is; #N/A sets it to null (Bulk API CSV rules).
            if raw == "" or (raw == "#N/A" and creating):
                continue
            value = "" if raw == "#N/A" else raw
            if kind == "id":
                record_id = value
            elif kind == "ref":
                ref = obj.relationship(name)
                assert ref is not None
                if value == "":
                    body[ref.name] = ""
                else:
                    body[name] = {key: value}
            else:
                body[name] = value
        records = self.app.records
        if operation == "insert":
            if record_id:
                raise ApiError(400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.",
                               ["Id"])
            if obj.is_event:
                event = self.app.events.publish(obj, body, user)  # type: ignore[attr-defined]
                return event["publish_id"], True
            return records.create(obj.name, body, user, source="csv"), True
        if operation == "upsert":
            ext = info["externalIdFieldName"]
            if ext == "Id":
                result = records.upsert(obj.name, "Id", record_id, body, user, source="csv")
                return result.id, result.created
            value = body.pop(ext, "")
            if not value:
                raise ApiError(400, "MISSING_ARGUMENT", f"{ext} not specified", [ext])
            result = records.upsert(obj.name, ext, value, body, user, source="csv")
            return result.id, result.created
        if not record_id:
            raise ApiError(400, "MISSING_ARGUMENT", f"Id not specified in an {operation} call", ["Id"])
        if operation == "update":
            return records.update(obj.name, record_id, body, user, source="csv"), False
        deleted = records.delete(obj.name, record_id, user)
        if operation == "hardDelete":  # no recycle bin: the row is gone even for queryAll
            self.store.purge(deleted)
        return deleted, False

    # -- query processing ------------------------------------------------------------------------

    def _query(self, job_id: str) -> None:
        started = time.monotonic()
        info = self._start(job_id)
        if info is None:
            return
        try:
            query = self._parse_query(info["_query"])
            _total, rows = soql.execute(query, self.app.rest.source,  # type: ignore[attr-defined]
                                        include_deleted=info["operation"] == "queryAll",
                                        api_version=f"{info['apiVersion']:.1f}")
        except ApiError as exc:
            self._finish(job_id, "Failed", started, f"{exc.error_code} : {exc.message}")
            return
        types = [path.field.type for path in query.fields]
        out = io.StringIO()
        writer = csv.writer(out, delimiter=DELIMITERS[info["columnDelimiter"]], lineterminator="",
                            quoting=csv.QUOTE_ALL)
        lines: list[str] = []
        for row in rows:
            writer.writerow([_csv_value(v, t) for v, t in zip(soql.row_values(query, row), types, strict=True)])
            lines.append(out.getvalue())
            out.seek(0)
            out.truncate()
        for _ in range(max(1, -(-len(lines) // INTERNAL_BATCH_SIZE))):
            if not self._pause():
                return  # stopping: the job reruns after a restart
        with self.store.transaction():
            info = self._load(job_id, "query")
            if info["state"] != "InProgress":
                return
            self.store.execute("DELETE FROM bulk2_query_chunks WHERE job_id = ?", (job_id,))
            for n in range(0, len(lines), QUERY_CHUNK_ROWS):
                self.store.execute("INSERT INTO bulk2_query_chunks (job_id, chunk, lines) VALUES (?, ?, ?)",
                                   (job_id, n // QUERY_CHUNK_ROWS, json.dumps(lines[n:n + QUERY_CHUNK_ROWS])))
            info["numberRecordsProcessed"] = len(lines)
            info["state"] = "JobComplete"
            self._add_time(info, started)
            self._save(info)


def register(router: Router, app: EmulatorApp) -> None:
    bulk = Bulk2(app)
    app.bulk2 = bulk  # type: ignore[attr-defined]
    app.stop_workers = bulk.stop  # type: ignore[attr-defined]
    job = r"(?P<job>\w+)"
    router.api("POST", r"jobs/ingest/?", bulk.create_ingest)
    router.api("GET", r"jobs/ingest/?", bulk.list_ingest)
    router.api("GET", rf"jobs/ingest/{job}/?", bulk.ingest_info)
    router.api("PATCH", rf"jobs/ingest/{job}/?", bulk.close_or_abort_ingest)
    router.api("DELETE", rf"jobs/ingest/{job}/?", bulk.delete_ingest)
    router.api("PUT", rf"jobs/ingest/{job}/batches/?", bulk.upload)
    router.api("GET", rf"jobs/ingest/{job}/successfulResults/?", bulk.successful_results)
    router.api("GET", rf"jobs/ingest/{job}/failedResults/?", bulk.failed_results)
    # The docs spell it unprocessedrecords; simple-salesforce asks for unprocessedRecords.
    router.api("GET", rf"jobs/ingest/{job}/unprocessed[rR]ecords/?", bulk.unprocessed_records)
    router.api("POST", r"jobs/query/?", bulk.create_query)
    router.api("GET", r"jobs/query/?", bulk.list_query)
    router.api("GET", rf"jobs/query/{job}/?", bulk.query_info)
    router.api("PATCH", rf"jobs/query/{job}/?", bulk.abort_query)
    router.api("DELETE", rf"jobs/query/{job}/?", bulk.delete_query)
    router.api("GET", rf"jobs/query/{job}/results/?", bulk.query_results)
