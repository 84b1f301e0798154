"""Lambda entry points: ``start`` (EventBridge Scheduler or on demand) and ``work`` (the SQS worker).

``start`` refuses to overlap a running sync (the lock), resumes an unfinished run or opens a new window,
and queues step 0. ``work`` claims the step named by its message (a duplicate delivery claims nothing),
runs the engine and, when its time runs short, checkpoints and queues the next step on the same queue: the
queue is the continuation mechanism, with a DLQ and alarms, and nothing of ours schedules anything.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from salesforce_access import (
    AllocationExhausted,
    BudgetExhausted,
    SalesforceError,
    get_access,
)
from salesforce_access import (
    ConfigurationError as LayerConfigurationError,
)
from salesforce_access.observability import logger, metrics, tracer
from salesforce_access.volume import bulk_threshold

from .config import ConfigurationError, Settings
from .engine import OutOfTime, SyncContext, SyncEngine
from .erp import ErpCustomers, ErpRejected, ErpUnavailable
from .mapping import MappingError, SyncMapping, load_mapping
from .report import Report
from .salesforce import EXTERNAL_ID, SalesforceAccounts, sf_watermark
from .state import LockHeld, NotClaimed, RunState, StateStore

AWS_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 4})
MAX_ERRORS_SHOWN = 10
EARLIEST_SINCE = datetime(2000, 1, 1, tzinfo=UTC)  # a backfill from before this is a mistake (use mode full)

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


# -- inputs ---------------------------------------------------------------------------------------------


class StartRequest(BaseModel):
    """The start event (Scheduler input or on demand): a nightly incremental run unless told otherwise."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["incremental", "full", "backfill"] = "incremental"
    since: AwareDatetime | None = None  # backfill: re-sync both sides from this moment
    trigger: str = "on-demand"

    @field_validator("since")
    @classmethod
    def _since_in_range(cls, value: datetime | None) -> datetime | None:
        """Checked here, before the lock: near datetime's limits a zoned time cannot even become UTC
        (0001-01-01T00:00:00+01:00), and a window from before 2000 or from the future is a mistake."""
        if value is None:
            return None
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not EARLIEST_SINCE <= utc <= datetime.now(UTC):
            raise ValueError("must be a time from 2000-01-01T00:00:00Z up to now")
        return utc

    @model_validator(mode="after")
    def _since_for_backfill(self) -> StartRequest:
        if (self.mode == "backfill") != (self.since is not None):
            raise ValueError("since is required for mode backfill, and only for it")
        return self


class ContinueMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    step: int


def _errors(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors()][:MAX_ERRORS_SHOWN]


# -- wiring ---------------------------------------------------------------------------------------------


@functools.cache
def _settings() -> Settings:
    return Settings.from_env()


@functools.cache
def _clients() -> dict[str, Any]:
    """boto3 clients on first use (not at import: tests start moto first)."""
    return {name: boto3.client(name, config=AWS_CONFIG) for name in ("dynamodb", "s3", "sqs")}


def _store(settings: Settings) -> StateStore:
    return StateStore(_clients()["dynamodb"], settings.state_table)


def _erp(settings: Settings) -> ErpCustomers:
    api_key = None
    if settings.erp_api_key_secret_arn:  # the bare key, or {"api_key": "..."} (docs/configuration.md)
        raw = str(parameters.get_secret(settings.erp_api_key_secret_arn, max_age=300)).strip()
        api_key = json.loads(raw).get("api_key") if raw.startswith("{") else raw
    return ErpCustomers(settings.erp_base_url, api_key=api_key, connect_timeout=settings.erp_connect_timeout_seconds,
                        read_timeout=settings.erp_read_timeout_seconds, max_attempts=settings.erp_max_attempts)


def _send(settings: Settings, run: RunState) -> None:
    _clients()["sqs"].send_message(QueueUrl=settings.queue_url,
                                   MessageBody=json.dumps({"run_id": run.run_id, "step": run.step}))


def _check_salesforce_fields(access: Any, mapping: SyncMapping) -> None:
    """Every mapped Account field exists (and is writable where the sync writes it): one describe call."""
    describe = access.request("GET", "sobjects/Account/describe")
    fields = {f["name"]: f for f in describe.get("fields", [])}
    problems = []
    for index, field in enumerate(mapping.fields):
        info = fields.get(field.salesforce)
        label = f"fields[{index}] (salesforce {field.salesforce!r}, erp {field.erp!r})"
        if info is None:
            problems.append(f"{label}: Account has no field {field.salesforce}")
        elif field.direction != "to_erp" and not info.get("updateable", True):
            problems.append(f"{label}: Account.{field.salesforce} is not updateable")
    if EXTERNAL_ID not in fields or not fields[EXTERNAL_ID].get("externalId", True):
        problems.append(f"Account.{EXTERNAL_ID} must exist and be an external id")
    if problems:
        raise MappingError(f"mapping file {mapping.source} does not match the org: " + "; ".join(problems))


# -- start ----------------------------------------------------------------------------------------------


def _window(request: StartRequest, watermarks: dict[str, str | None], lag_seconds: float) -> dict[str, str | None]:
    now = datetime.now(UTC) - timedelta(seconds=lag_seconds)
    window: dict[str, str | None] = {
        "salesforce_to": sf_watermark(now.replace(microsecond=(now.microsecond // 1000) * 1000)),
        "erp_to": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "salesforce_from": watermarks["salesforce"], "erp_from": watermarks["erp"],
    }
    if request.mode == "full":
        window["salesforce_from"] = window["erp_from"] = None
    elif request.mode == "backfill" and request.since is not None:
        since = request.since.astimezone(UTC)
        window["salesforce_from"] = sf_watermark(since)
        window["erp_from"] = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return window


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def start(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Start (or resume) a sync run; refuses while another run holds the lock."""
    try:
        request = StartRequest.model_validate(event or {})
    except ValidationError as exc:
        logger.error("start event rejected", extra={"errors": _errors(exc)})
        return {"status": "rejected", "errors": _errors(exc)}
    settings = _settings()
    store = _store(settings)
    access = get_access().bind(context)
    try:
        mapping = load_mapping()
        _check_salesforce_fields(access, mapping)
    except MappingError as exc:
        logger.error("customer sync not started: invalid mapping", extra={"error": str(exc)})
        metrics.add_metric(name="SyncConfigurationErrors", unit=MetricUnit.Count, value=1)
        return {"status": "rejected", "errors": [str(exc)]}

    current = store.current_run_id()
    run = store.load_run(current) if current else None
    run_id = run.run_id if run else f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    holder = store.lock_holder()
    if holder is not None and holder[0] != run_id:
        return _refused(holder)
    if run is not None and run.status in ("queued", "running") and holder is not None:
        return _refused(holder)  # the unfinished run is alive: its own lock is not expired
    try:
        store.acquire_lock(run_id, settings.lock_ttl_seconds)
    except LockHeld as held:
        return _refused((held.owner, held.expires_at))
    try:
        if run is not None:
            if not store.requeue(run):
                return {"status": "skipped", "reason": "another start resumed the run", "run_id": run.run_id}
            _send(settings, run)
            logger.info("customer sync resumed", extra={"run_id": run.run_id, "phase": run.phase, "step": run.step})
            metrics.add_metric(name="SyncRunsResumed", unit=MetricUnit.Count, value=1)
            return {"status": "resumed", "run_id": run.run_id, "step": run.step}

        try:
            user_id = settings.integration_user_id or SalesforceAccounts.integration_user_id(access)
        except LookupError as exc:
            store.release_lock(run_id)
            logger.error("customer sync not started", extra={"error": str(exc)})
            return {"status": "rejected", "errors": [str(exc)]}
        window = _window(request, store.watermarks(), settings.watermark_lag_seconds)
        mode = "full" if request.mode == "incremental" and window["salesforce_from"] is None \
            and window["erp_from"] is None else request.mode
        run = RunState(run_id=run_id, mode=mode, started_at=datetime.now(UTC).isoformat(), integration_user_id=user_id,
                       window=window)
        store.create_run(run)
        _send(settings, run)
        logger.info("customer sync started", extra={"run_id": run_id, "mode": mode, "trigger": request.trigger,
                                                    "window": window})
        metrics.add_metric(name="SyncRunsStarted", unit=MetricUnit.Count, value=1)
        return {"status": "started", "run_id": run_id, "mode": mode, "window": window}
    except BaseException:
        _release_after_failure(store, run_id)  # a start that failed must not keep the next runs out
        raise


def _release_after_failure(store: StateStore, run_id: str) -> None:
    try:
        store.release_lock(run_id)
    except Exception as exc:  # the original error matters more; the lock expires anyway
        logger.error("customer sync lock not released after a failed start",
                     extra={"run_id": run_id, "error": type(exc).__name__})


def _refused(holder: tuple[str, int]) -> dict[str, Any]:
    logger.warning("customer sync not started: another run holds the lock",
                   extra={"holder": holder[0], "lock_expires_at": holder[1]})
    metrics.add_metric(name="SyncOverlapsRefused", unit=MetricUnit.Count, value=1)
    return {"status": "skipped", "reason": "another run holds the lock", "run_id": holder[0],
            "lock_expires_at": holder[1]}


# -- work -----------------------------------------------------------------------------------------------


class ApiCallCounter:
    """Counts Salesforce API requests (``/services/data/``) made through the layer's session."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        if "/services/data/" in (response.request.url or ""):
            self.count += 1
        return response

    def take(self) -> int:
        value, self.count = self.count, 0
        return value


def _api_counter(access: Any) -> ApiCallCounter:
    """The counter hooked on this container's Salesforce session (once), reset for this invocation."""
    counter = getattr(access.session, "customer_sync_api_counter", None)
    if counter is None:
        counter = ApiCallCounter()
        access.session.customer_sync_api_counter = counter
        access.session.hooks.setdefault("response", []).append(counter)
    counter.take()
    return counter


class Worker:
    """Runs one claimed step of a run for one invocation."""

    def __init__(self, settings: Settings, context: Any):
        self.settings = settings
        self.context = context
        self.store = _store(settings)

    def __call__(self, record: SQSRecord) -> None:
        try:
            message = ContinueMessage.model_validate_json(record.body)
        except ValidationError as exc:
            logger.error("unusable sync message dropped", extra={"message_id": record.message_id,
                                                                 "errors": _errors(exc)})
            return
        try:
            run = self.store.claim(message.run_id, message.step)
        except NotClaimed:
            logger.info("duplicate or stale sync message ignored", extra=message.model_dump())
            metrics.add_metric(name="SyncDuplicateMessages", unit=MetricUnit.Count, value=1)
            return
        self.execute(run)

    def execute(self, run: RunState) -> None:
        settings = self.settings
        log = {"run_id": run.run_id, "step": run.step}
        snapshot = run.to_json()
        access = get_access().bind(self.context)
        counter = _api_counter(access)
        report = Report(_clients()["s3"], settings.report_bucket)
        clock = {"last": time.monotonic()}

        def save(current: RunState) -> None:
            nonlocal snapshot
            current.count("api_calls", counter.take())
            now = time.monotonic()
            current.elapsed_seconds += now - clock["last"]
            clock["last"] = now
            if report.flush(current.run_id, current.report_parts + 1):
                current.report_parts += 1
            self.store.save(current)
            snapshot = current.to_json()

        try:
            self.store.acquire_lock(run.run_id, settings.lock_ttl_seconds)  # renew for this invocation
            mapping = load_mapping()
            ctx = SyncContext(
                erp=_erp(settings),
                salesforce=SalesforceAccounts(access, mapping.salesforce_fields, run.integration_user_id),
                mapping=mapping, report=report, watermarks=self.store, save=save,
                time_left=lambda: self.context.get_remaining_time_in_millis() / 1000 - settings.time_reserve_seconds,
                ensure_allocation=lambda: access.ensure_allocation(settings.max_api_share),
                bulk_threshold=bulk_threshold(), bulk_part_records=settings.bulk_part_records,
                bulk_query_page_size=settings.bulk_query_page_size, erp_page_size=settings.erp_page_size,
                erp_user=settings.erp_user,
            )
            run.invocations += 1
            SyncEngine(ctx, run).execute()
        except (OutOfTime, BudgetExhausted):
            save(run)
            self.store.hand_over(run, "queued")
            _send(settings, run)
            logger.info("customer sync continues in a follow-up invocation",
                        extra={**log, "phase": run.phase, "checkpoint": run.checkpoint})
            metrics.add_metric(name="SyncContinuations", unit=MetricUnit.Count, value=1)
            return
        except (AllocationExhausted, SalesforceError, ErpUnavailable, ErpRejected, LockHeld, MappingError,
                LayerConfigurationError, ConfigurationError) as exc:
            self._pause(RunState.from_json(snapshot), exc, counter, expected=True)
            return
        except Exception as exc:
            self._pause(RunState.from_json(snapshot), exc, counter, expected=False)
            return
        self._complete(run, report)

    def _pause(self, run: RunState, exc: Exception, counter: ApiCallCounter, *, expected: bool) -> None:
        """Keep the last committed checkpoint; the next start resumes from it."""
        run.pause_reason = f"{type(exc).__name__}: {exc}"[:500]
        run.count("api_calls", counter.take())
        self.store.hand_over(run, "paused")
        self.store.release_lock(run.run_id)
        extra = {"run_id": run.run_id, "phase": run.phase, "reason": run.pause_reason, "counters": run.counters}
        if expected:
            logger.warning("customer sync paused; the next run resumes from the checkpoint", extra=extra)
        else:
            logger.exception("customer sync paused by an unexpected error", extra=extra)
        metrics.add_metric(name="SyncRunsPaused", unit=MetricUnit.Count, value=1)

    def _complete(self, run: RunState, report: Report) -> None:
        run.status = "completed"
        summary = {
            "run_id": run.run_id, "mode": run.mode, "status": "completed", "started_at": run.started_at,
            "finished_at": datetime.now(UTC).isoformat(), "window": run.window,
            "duration_seconds": round(run.elapsed_seconds, 3), "invocations": run.invocations,
            **{name: run.counters.get(name, 0) for name in
               ("read", "created", "updated", "deleted", "failed", "skipped", "conflicts", "api_calls")},
        }
        summary["report"] = report.summary(run.run_id, summary)
        self.store.hand_over(run, "completed")
        self.store.release_lock(run.run_id)
        logger.info("customer sync run completed", extra={"summary": summary})
        for name in ("read", "created", "updated", "deleted", "failed", "skipped", "conflicts"):
            metrics.add_metric(name=f"SyncRecords{name.capitalize()}", unit=MetricUnit.Count, value=summary[name])
        metrics.add_metric(name="SyncApiCallsUsed", unit=MetricUnit.Count, value=summary["api_calls"])
        metrics.add_metric(name="SyncRunDuration", unit=MetricUnit.Seconds, value=summary["duration_seconds"])
        metrics.add_metric(name="SyncRunsCompleted", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS worker: one message (BatchSize 1) = one step of a run."""
    return process_partial_response(event=event, record_handler=Worker(_settings(), context), processor=processor,
                                    context=context)
