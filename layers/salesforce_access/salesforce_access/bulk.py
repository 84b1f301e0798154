"""Bulk API 2.0 ingest and query, streamed so memory stays constant whatever the record count.

Ingest writes CSV from an iterator of dict rows into a temporary file and starts a new job each time a part
would exceed 100 MB (one upload per job, as Salesforce requires); query results and ingest results are
read with a CSV reader over the response stream, one ``Sforce-Locator`` page at a time. Polling uses
growing, jittered delays inside the invocation's time budget; when the budget runs out `BudgetExhausted`
carries the job id so another invocation can resume with `BulkApi.wait` and the result readers.
"""

from __future__ import annotations

import codecs
import csv
import io
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field

from salesforce_access.budget import PollPolicy
from salesforce_access.errors import BudgetExhausted, BulkJobFailed, SalesforceError
from salesforce_access.observability import logger, tracer

if TYPE_CHECKING:
    from salesforce_access.access import SalesforceAccess

Operation = Literal["insert", "update", "upsert", "delete", "hardDelete"]
JobKind = Literal["ingest", "query"]

MAX_PART_BYTES = 100 * 1024 * 1024  # raw CSV per job; Salesforce's limit is 150 MB once base64-encoded
DEFAULT_PAGE_SIZE = 50_000
TERMINAL_STATES = {"JobComplete", "Failed", "Aborted"}
_READ_CHUNK = 64 * 1024
_PAGE_REREADS = 2


class BulkJob(BaseModel):
    """The job info fields the layer uses (the rest are kept as extras)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    id: str
    state: str
    object: str | None = None
    operation: str | None = None
    number_records_processed: int = Field(0, alias="numberRecordsProcessed")
    number_records_failed: int = Field(0, alias="numberRecordsFailed")
    error_message: str | None = Field(None, alias="errorMessage")
    kind: JobKind = "ingest"


def csv_value(value: Any) -> str:
    """Bulk CSV rendering: None -> empty (field left unchanged; send "#N/A" to null a field)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def iter_text_lines(response: requests.Response, chunk_size: int = _READ_CHUNK) -> Iterator[str]:
    """Decode a streamed response into lines that keep their ``\\n`` (so quoted newlines survive csv)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    for chunk in response.iter_content(chunk_size=chunk_size):
        pending += decoder.decode(chunk)
        *lines, pending = pending.split("\n")
        for line in lines:
            yield line + "\n"
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


class QueryPage:
    """One page of Bulk query results: ``rows`` (streamed dicts of strings) and ``next_locator`` (None on the
    last page). Use it as a context manager, or call `close`, to release the connection of a page not read
    to the end."""

    def __init__(self, rows: Iterator[dict[str, str]], next_locator: str | None, response: requests.Response):
        self.rows = rows
        self.next_locator = next_locator
        self._response = response

    def close(self) -> None:
        close = getattr(self.rows, "close", None)
        if close is not None:
            close()
        self._response.close()

    def __enter__(self) -> QueryPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BulkApi:
    """Bulk API 2.0 through the layer's session; get it from ``access.bulk``."""

    def __init__(self, access: SalesforceAccess, poll: PollPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self._access = access
        self.poll = poll or PollPolicy()
        self._sleep = sleep

    # -- ingest -------------------------------------------------------------------------------------

    @tracer.capture_method(capture_response=False)
    def ingest(
        self,
        sobject: str,
        operation: Operation,
        rows: Iterable[Mapping[str, Any]],
        *,
        external_id_field: str | None = None,
        columns: Sequence[str] | None = None,
        wait: bool = True,
        max_part_bytes: int = MAX_PART_BYTES,
    ) -> list[BulkJob]:
        """Load `rows` (dicts sharing the same keys); returns one job per part, finished if `wait`.

        Columns default to the first row's keys; a later row with another key raises ValueError.
        """
        if operation == "upsert" and not external_id_field:
            raise ValueError("upsert needs external_id_field")
        jobs: list[BulkJob] = []
        for part in self._parts(rows, columns, max_part_bytes):
            with part:
                jobs.append(self._load_part(sobject, operation, external_id_field, part))
        if wait:
            jobs = [self.wait(job) for job in jobs]
        return jobs

    def _parts(
        self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None, max_part_bytes: int
    ) -> Iterator[IO[bytes]]:
        iterator = iter(rows)
        first = next(iterator, None)
        if first is None:
            return
        header = list(columns or first.keys())
        allowed = set(header)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")

        def encode(values: Sequence[str]) -> bytes:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(values)
            return buffer.getvalue().encode("utf-8")

        header_bytes = encode(header)
        part: IO[bytes] | None = None
        size = 0
        for row in _chain(first, iterator):
            unknown = set(row) - allowed
            if unknown:
                raise ValueError(f"row has columns not in the header: {sorted(unknown)}")
            line = encode([csv_value(row.get(column)) for column in header])
            if len(header_bytes) + len(line) > max_part_bytes:
                raise ValueError("one row is larger than the maximum part size")
            if part is not None and size + len(line) > max_part_bytes:
                part.seek(0)
                yield part
                part = None
            if part is None:
                part = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller's `with`
                part.write(header_bytes)
                size = len(header_bytes)
            part.write(line)
            size += len(line)
        if part is not None:
            part.seek(0)
            yield part

    def _load_part(
        self, sobject: str, operation: Operation, external_id_field: str | None, part: IO[bytes]
    ) -> BulkJob:
        spec: dict[str, Any] = {"object": sobject, "operation": operation, "contentType": "CSV",
                                "lineEnding": "LF", "columnDelimiter": "COMMA"}
        if external_id_field:
            spec["externalIdFieldName"] = external_id_field
        # Creating a job twice only leaves an empty Open job behind, so a timed-out create may be replayed.
        job = self._job(self._access.request("POST", "jobs/ingest", json=spec, idempotent=True), "ingest")
        try:
            self._access.send(
                "PUT", f"jobs/ingest/{job.id}/batches", data=part,
                headers={"Content-Type": "text/csv", "Accept": "application/json"},
            )
            closed = self._close(job.id)
        except Exception:
            self._abort_quietly(job.id, "ingest")
            raise
        logger.info("Bulk ingest job submitted", extra={"job_id": job.id, "sobject": sobject, "operation": operation})
        return closed

    def _close(self, job_id: str) -> BulkJob:
        try:
            return self._job(self._access.request("PATCH", f"jobs/ingest/{job_id}", json={"state": "UploadComplete"}),
                             "ingest")
        except SalesforceError:
            # A close replayed after a timeout is refused once the first one went through: check the job.
            info = self.job(job_id, "ingest")
            if info.state == "Open":
                raise
            return info

    # -- query --------------------------------------------------------------------------------------

    def query(
        self, soql: str, *, include_deleted: bool = False, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict[str, str]]:
        """Run a Bulk 2.0 query and stream its rows (dicts of strings), page by page."""
        job = self.start_query(soql, include_deleted=include_deleted)
        job = self.wait(job)
        yield from self.query_results(job, page_size=page_size)

    @tracer.capture_method(capture_response=False)
    def start_query(self, soql: str, *, include_deleted: bool = False) -> BulkJob:
        spec = {"operation": "queryAll" if include_deleted else "query", "query": soql, "contentType": "CSV",
                "lineEnding": "LF", "columnDelimiter": "COMMA"}
        # A duplicated query job costs one job of the daily allowance and changes no data.
        return self._job(self._access.request("POST", "jobs/query", json=spec, idempotent=True), "query")

    def query_results(self, job: BulkJob | str, *, page_size: int = DEFAULT_PAGE_SIZE,
                      locator: str | None = None) -> Iterator[dict[str, str]]:
        """Stream the rows of a completed query job from `locator` (None: the first page), following
        ``Sforce-Locator`` until the last page."""
        while True:
            with self.query_page(job, locator, page_size=page_size) as page:
                yield from page.rows
            if page.next_locator is None:
                return
            locator = page.next_locator

    def query_page(self, job: BulkJob | str, locator: str | None = None, *,
                   page_size: int = DEFAULT_PAGE_SIZE) -> QueryPage:
        """One page of a completed query job's results, at `locator` (None: the first page).

        The request is sent at once, so ``next_locator`` is known before the rows are read (None on the last
        page); ``rows`` streams the CSV. A job's results stay readable for 7 days and a locator is stable, so a
        later invocation can checkpoint (job id, locator, rows done) and resume exactly where one stopped.
        """
        params: dict[str, Any] = {"maxRecords": page_size}
        if locator:
            params["locator"] = locator
        path = f"jobs/query/{_job_id(job)}/results"
        response = self._open_csv(path, params)
        next_locator = response.headers.get("Sforce-Locator")
        return QueryPage(self._read_csv(path, params, None, first=response),
                         None if not next_locator or next_locator == "null" else next_locator, response)

    # -- ingest results -----------------------------------------------------------------------------

    def successful_results(self, job: BulkJob | str) -> Iterator[dict[str, str]]:
        """Rows with ``sf__Id``, ``sf__Created`` and the uploaded columns (order not guaranteed)."""
        return self._read_csv(f"jobs/ingest/{_job_id(job)}/successfulResults/", None, None)

    def failed_results(self, job: BulkJob | str) -> Iterator[dict[str, str]]:
        """Rows with ``sf__Id``, ``sf__Error`` and the uploaded columns."""
        return self._read_csv(f"jobs/ingest/{_job_id(job)}/failedResults/", None, None)

    def unprocessed_records(self, job: BulkJob | str) -> Iterator[dict[str, str]]:
        return self._read_csv(f"jobs/ingest/{_job_id(job)}/unprocessedrecords/", None, None)

    # -- jobs ---------------------------------------------------------------------------------------

    def job(self, job_id: str, kind: JobKind = "ingest") -> BulkJob:
        return self._job(self._access.request("GET", f"jobs/{kind}/{job_id}"), kind)

    @tracer.capture_method(capture_response=False)
    def wait(self, job: BulkJob | str, kind: JobKind | None = None) -> BulkJob:
        """Poll until the job is JobComplete (returned), Failed/Aborted (BulkJobFailed) or the budget ends."""
        job_kind: JobKind = kind or (job.kind if isinstance(job, BulkJob) else "ingest")
        job_id = _job_id(job)
        budget = self._access.budget()
        polls = 0
        while True:
            info = self.job(job_id, job_kind)
            if info.state == "JobComplete":
                return info
            if info.state in TERMINAL_STATES:
                raise BulkJobFailed(
                    f"Bulk {job_kind} job {job_id} ended {info.state}: {info.error_message or 'no message'}",
                    job_id=job_id, state=info.state, error_code=info.state,
                )
            delay = self.poll.delay(polls)
            polls += 1
            if not budget.allows(delay + 1.0):
                raise BudgetExhausted(
                    f"time budget ran out while Bulk {job_kind} job {job_id} is {info.state}; resume with wait()",
                    job_id=job_id,
                )
            self._sleep(delay)

    def abort(self, job: BulkJob | str, kind: JobKind = "ingest") -> BulkJob:
        return self._job(self._access.request("PATCH", f"jobs/{kind}/{_job_id(job)}", json={"state": "Aborted"}),
                         kind)

    # -- internals ----------------------------------------------------------------------------------

    def _open_csv(self, path: str, params: dict[str, Any] | None) -> requests.Response:
        return self._access.send("GET", path, params=params, stream=True, headers={"Accept": "text/csv"})

    def _read_csv(
        self, path: str, params: dict[str, Any] | None, locator_out: list[str | None] | None,
        first: requests.Response | None = None,
    ) -> Iterator[dict[str, str]]:
        """Stream one CSV resource; if the connection drops mid-body, re-read it and skip rows already given."""
        delivered = 0
        rereads = 0
        while True:
            response, first = first or self._open_csv(path, params), None
            if locator_out is not None:
                locator_out[0] = response.headers.get("Sforce-Locator")
            seen = 0
            try:
                for row in csv.DictReader(iter_text_lines(response)):
                    seen += 1
                    if seen > delivered:
                        delivered = seen
                        yield row
                return
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError):
                rereads += 1
                if rereads > _PAGE_REREADS:
                    raise
                logger.warning("Bulk result stream interrupted; re-reading the page",
                               extra={"path": path, "rows_delivered": delivered})
            finally:
                response.close()

    def _abort_quietly(self, job_id: str, kind: JobKind) -> None:
        try:
            self.abort(job_id, kind)
        except Exception:  # the original error matters more than a failed clean-up
            logger.warning("Could not abort Bulk job after a failure", extra={"job_id": job_id})

    @staticmethod
    def _job(body: Any, kind: JobKind) -> BulkJob:
        return BulkJob.model_validate({**body, "kind": kind})


def _job_id(job: BulkJob | str) -> str:
    return job.id if isinstance(job, BulkJob) else job


def _chain(first: Mapping[str, Any], rest: Iterator[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    yield first
    yield from rest
