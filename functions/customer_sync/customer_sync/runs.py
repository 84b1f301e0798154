"""The run lifecycle, between the handlers and the engine: what a start and a worker step do with the lock,
the run state, the step queue and the report. No Lambda decorators and no AWS clients here: the adapters
(state.StateStore for DynamoDB, report.Report for S3, steps.StepQueue for SQS, the ERP and Salesforce
adapters) are handed in by customer_sync.container.

- ``start``: check the mapping against the org, take the run lock, resume the unfinished run or plan a new
  window, and queue its first step. Refuses while another run holds the lock. A run whose worker stopped
  beating (crashed, killed) is taken over: logged as "customer sync run recovered", counted, resumed.
- ``work``: claim the step a message names (a duplicate delivery claims nothing), run the engine within the
  invocation's time while a heartbeat renews the step's lease and the lock, and then hand over (checkpoint,
  queue the next step), pause (keep the last checkpoint, release the lock: the next start resumes) or
  complete (summary, release the lock). A step whose lease another invocation took stops without a write.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from salesforce_access import AllocationExhausted, BudgetExhausted, SalesforceError
from salesforce_access import ConfigurationError as LayerConfigurationError
from salesforce_access.observability import logger, metrics
from salesforce_access.volume import bulk_threshold

from .config import ConfigurationError, Settings
from .engine import OutOfTime, SyncContext, SyncEngine
from .erp import ErpCustomers, ErpRejected, ErpUnavailable
from .events import StartRequest, StepMessage
from .mapping import MappingError, load_mapping
from .report import Report
from .salesforce import ApiCallCounter, SalesforceAccounts, sf_watermark
from .state import Claim, LeaseLost, LockHeld, NotClaimed, RunState, StateStore
from .steps import StepQueue

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from salesforce_access import SalesforceAccess

# Faults the run expects and survives: it pauses at its last checkpoint and the next start resumes it.
EXPECTED_FAULTS = (AllocationExhausted, SalesforceError, ErpUnavailable, ErpRejected, LockHeld, MappingError,
                   LayerConfigurationError, ConfigurationError)
HEARTBEATS_PER_LEASE = 5  # a live worker beats five times per lease: a lapsed lease means five missed beats
SUMMARY_COUNTERS = ("read", "created", "updated", "deleted", "failed", "skipped", "conflicts", "api_calls")


def plan_window(request: StartRequest, watermarks: dict[str, str | None], now: datetime) -> dict[str, str | None]:
    """Each side's window: from its watermark (none for a full run, `since` for a backfill) up to `now`
    (already set back by the watermark lag)."""
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


@dataclass
class SyncRuns:
    """Starts and steps of customer sync runs; one per warm container."""

    settings: Settings
    store: StateStore
    steps: StepQueue
    report: Callable[[], Report]  # a fresh report buffer for each step
    erp: Callable[[], ErpCustomers]
    access: Callable[[LambdaContext], SalesforceAccess]  # the layer's access, bound to this invocation
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    heartbeat_seconds: float | None = None  # None: SYNC_LOCK_TTL_SECONDS / HEARTBEATS_PER_LEASE (tests: shorter)

    # -- start ----------------------------------------------------------------------------------------------

    def start(self, request: StartRequest, context: LambdaContext) -> dict[str, Any]:
        """Start (or resume) a run; the answer says which: started, resumed, skipped or rejected."""
        access = self.access(context)
        try:
            SalesforceAccounts.check_mapping(access, load_mapping())
        except MappingError as exc:
            logger.error("customer sync not started: invalid mapping", extra={"error": str(exc)})
            metrics.add_metric(name="SyncConfigurationErrors", unit=MetricUnit.Count, value=1)
            return {"status": "rejected", "errors": [str(exc)]}

        store = self.store
        current = store.current_run_id()
        run = store.load_run(current) if current else None
        run_id = run.run_id if run else f"{self.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        holder = store.lock_holder()
        if holder is not None and holder[0] != run_id:
            return self._refused(holder)
        if run is not None and run.status in ("queued", "running") and holder is not None:
            return self._refused(holder)  # the unfinished run is alive: its own lock is not expired
        try:
            store.acquire_lock(run_id, self.settings.lock_ttl_seconds)
        except LockHeld as held:
            return self._refused((held.owner, held.expires_at))
        try:
            return self._resume(run) if run is not None else self._open(run_id, request, access)
        except BaseException:
            self._release_after_failure(run_id)  # a start that failed must not keep the next runs out
            raise

    def _resume(self, run: RunState) -> dict[str, Any]:
        crashed = run.status in ("queued", "running")  # unfinished, not paused, and its lock lapsed: no worker beats
        crashed_step = run.step
        last_heartbeat = self.store.last_heartbeat(run.run_id) if crashed else None  # the requeue replaces it
        if not self.store.requeue(run):
            return {"status": "skipped", "reason": "another invocation resumed the run", "run_id": run.run_id}
        if crashed:
            self._recovered(run, crashed_step, last_heartbeat, by="start")
        self.steps.send(run.run_id, run.step)
        logger.info("customer sync resumed", extra={"run_id": run.run_id, "phase": run.phase, "step": run.step})
        metrics.add_metric(name="SyncRunsResumed", unit=MetricUnit.Count, value=1)
        answer: dict[str, Any] = {"status": "resumed", "run_id": run.run_id, "step": run.step}
        return answer | {"recovered_step": crashed_step} if crashed else answer

    def _recovered(self, run: RunState, step: int, last_heartbeat: int | None, *, by: str) -> None:
        """A crashed worker left the run: say so once, with what it was doing (the alarm is on the metric)."""
        logger.error("customer sync run recovered", extra={
            "run_id": run.run_id, "crashed_step": step, "phase": run.phase, "checkpoint": run.checkpoint,
            "last_heartbeat": datetime.fromtimestamp(last_heartbeat, UTC).isoformat() if last_heartbeat else None,
            "recovered_by": by})
        metrics.add_metric(name="SyncRunsRecovered", unit=MetricUnit.Count, value=1)

    def _open(self, run_id: str, request: StartRequest, access: SalesforceAccess) -> dict[str, Any]:
        try:
            user_id = self.settings.integration_user_id or SalesforceAccounts.integration_user_id(access)
        except LookupError as exc:
            self.store.release_lock(run_id)
            logger.error("customer sync not started", extra={"error": str(exc)})
            return {"status": "rejected", "errors": [str(exc)]}
        now = self.now()
        lag = timedelta(seconds=self.settings.watermark_lag_seconds)
        window = plan_window(request, self.store.watermarks(), now - lag)
        first_run = window["salesforce_from"] is None and window["erp_from"] is None
        mode = "full" if request.mode == "incremental" and first_run else request.mode
        run = RunState(run_id=run_id, mode=mode, started_at=now.isoformat(), integration_user_id=user_id,
                       window=window)
        self.store.create_run(run)
        self.steps.send(run.run_id, run.step)
        logger.info("customer sync started", extra={"run_id": run_id, "mode": mode, "trigger": request.trigger,
                                                    "window": window})
        metrics.add_metric(name="SyncRunsStarted", unit=MetricUnit.Count, value=1)
        return {"status": "started", "run_id": run_id, "mode": mode, "window": window}

    def _release_after_failure(self, run_id: str) -> None:
        try:
            self.store.release_lock(run_id)
        except Exception as exc:  # the original error matters more; the lock expires anyway
            logger.error("customer sync lock not released after a failed start",
                         extra={"run_id": run_id, "error": type(exc).__name__})

    @staticmethod
    def _refused(holder: tuple[str, int]) -> dict[str, Any]:
        logger.warning("customer sync not started: another run holds the lock",
                       extra={"holder": holder[0], "lock_expires_at": holder[1]})
        metrics.add_metric(name="SyncOverlapsRefused", unit=MetricUnit.Count, value=1)
        return {"status": "skipped", "reason": "another run holds the lock", "run_id": holder[0],
                "lock_expires_at": holder[1]}

    # -- work -----------------------------------------------------------------------------------------------

    def work(self, message: StepMessage, context: LambdaContext) -> None:
        """Run the step `message` names, unless another invocation took it (a duplicate or stale message)."""
        try:
            claim = self.store.claim(message.run_id, message.step)
        except NotClaimed:
            logger.info("duplicate or stale sync message ignored", extra=message.model_dump())
            metrics.add_metric(name="SyncDuplicateMessages", unit=MetricUnit.Count, value=1)
            return
        if claim.recovered is not None:  # SQS redelivered the step of a worker that died: this one takes it over
            self._recovered(claim.run, claim.run.step, claim.recovered, by="step message redelivered")
        _Step(self, claim, context).execute()


class Heartbeat:
    """Renews the step's lease and the run lock every `every` seconds on a daemon thread while the step runs.
    A thread rather than the checkpoints: a live step may wait minutes between checkpoints (a Bulk job, an
    outside system's timeouts and retries), while a killed worker stops beating at once. `lost` is set when
    another invocation took the step over; the step checks it at its next checkpoint or time check."""

    def __init__(self, beat: Callable[[], None], every: float):
        self.beat, self.every = beat, every
        self.lost: LeaseLost | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="customer-sync-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()  # never left running into the next (frozen) invocation

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except LeaseLost as exc:
                self.lost = exc
                return
            except Exception as exc:  # a passing DynamoDB failure: the lease outlasts several missed beats
                logger.warning("customer sync heartbeat failed", extra={"error": type(exc).__name__})

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost


class _Step:
    """One claimed step of a run, in one invocation: the engine's checkpoints and how the step ends."""

    def __init__(self, runs: SyncRuns, claim: Claim, context: LambdaContext):
        self.runs, self.run, self.token, self.context = runs, claim.run, claim.token, context
        run = claim.run
        self.settings, self.store = runs.settings, runs.store
        self.snapshot = run.to_json()  # the last committed checkpoint: what a pause keeps
        self.access = runs.access(context)
        self.counter = ApiCallCounter.on(self.access)
        self.report = runs.report()
        self.last = runs.monotonic()
        every = runs.heartbeat_seconds or self.settings.lock_ttl_seconds / HEARTBEATS_PER_LEASE
        self.heartbeat = Heartbeat(lambda: self.store.heartbeat(run.run_id, self.token), every)

    def save(self, current: RunState) -> None:
        """The engine's checkpoint: report lines first (a crash may repeat a line, never lose one), then the run."""
        self.heartbeat.check()
        current.count("api_calls", self.counter.take())
        now = self.runs.monotonic()
        current.elapsed_seconds += now - self.last
        self.last = now
        if self.report.flush(current.run_id, current.report_parts + 1):
            current.report_parts += 1
        self.store.save(current, self.token)
        self.snapshot = current.to_json()

    def time_left(self) -> float:
        self.heartbeat.check()
        return self.context.get_remaining_time_in_millis() / 1000 - self.settings.time_reserve_seconds

    def execute(self) -> None:
        try:
            with self.heartbeat:
                self._execute()
        except LeaseLost as exc:  # another invocation resumed the run from the last checkpoint: leave it to it
            logger.warning("customer sync step stopped: another invocation took the run over",
                           extra={"run_id": self.run.run_id, "step": self.run.step, "error": str(exc)})
            metrics.add_metric(name="SyncLeasesLost", unit=MetricUnit.Count, value=1)

    def _execute(self) -> None:
        run, settings = self.run, self.settings
        try:
            self.store.acquire_lock(run.run_id, settings.lock_ttl_seconds)  # renew for this invocation
            mapping = load_mapping()
            ctx = SyncContext(
                erp=self.runs.erp(),
                salesforce=SalesforceAccounts(self.access, mapping.salesforce_fields, run.integration_user_id),
                mapping=mapping, report=self.report, watermarks=self.store, save=self.save, time_left=self.time_left,
                ensure_allocation=lambda: self.access.ensure_allocation(settings.max_api_share),
                bulk_threshold=bulk_threshold(), bulk_part_records=settings.bulk_part_records,
                bulk_query_page_size=settings.bulk_query_page_size, erp_page_size=settings.erp_page_size,
                erp_user=settings.erp_user,
            )
            run.invocations += 1
            SyncEngine(ctx, run).execute()
        except LeaseLost:
            raise
        except (OutOfTime, BudgetExhausted):
            self._hand_over()
            return
        except EXPECTED_FAULTS as exc:
            self._pause(exc, expected=True)
            return
        except Exception as exc:
            self._pause(exc, expected=False)
            return
        self._complete()

    def _hand_over(self) -> None:
        """Checkpoint, then the next step on the queue: a follow-up invocation continues from here."""
        run, step = self.run, self.run.step
        self.save(run)
        self.store.hand_over(run, "queued", self.token)
        self.runs.steps.send(run.run_id, run.step)
        logger.info("customer sync continues in a follow-up invocation",
                    extra={"run_id": run.run_id, "step": step, "phase": run.phase, "checkpoint": run.checkpoint})
        metrics.add_metric(name="SyncContinuations", unit=MetricUnit.Count, value=1)

    def _pause(self, exc: Exception, *, expected: bool) -> None:
        """Keep the last committed checkpoint; the next start resumes from it."""
        run = RunState.from_json(self.snapshot)
        run.pause_reason = f"{type(exc).__name__}: {exc}"[:500]
        run.count("api_calls", self.counter.take())
        self.store.hand_over(run, "paused", self.token)
        self.store.release_lock(run.run_id)
        extra = {"run_id": run.run_id, "phase": run.phase, "reason": run.pause_reason, "counters": run.counters}
        if expected:
            logger.warning("customer sync paused; the next run resumes from the checkpoint", extra=extra)
        else:
            logger.exception("customer sync paused by an unexpected error", extra=extra)
        metrics.add_metric(name="SyncRunsPaused", unit=MetricUnit.Count, value=1)

    def _complete(self) -> None:
        run = self.run
        run.status = "completed"
        counts = {name: run.counters.get(name, 0) for name in SUMMARY_COUNTERS}
        duration = round(run.elapsed_seconds, 3)
        summary: dict[str, Any] = {
            "run_id": run.run_id, "mode": run.mode, "status": "completed", "started_at": run.started_at,
            "finished_at": self.runs.now().isoformat(), "window": run.window, "duration_seconds": duration,
            "invocations": run.invocations, **counts,
        }
        summary["report"] = self.report.summary(run.run_id, summary)
        self.store.hand_over(run, "completed", self.token)
        self.store.release_lock(run.run_id)
        logger.info("customer sync run completed", extra={"summary": summary})
        for name in SUMMARY_COUNTERS[:-1]:
            metrics.add_metric(name=f"SyncRecords{name.capitalize()}", unit=MetricUnit.Count, value=counts[name])
        metrics.add_metric(name="SyncApiCallsUsed", unit=MetricUnit.Count, value=counts["api_calls"])
        metrics.add_metric(name="SyncRunDuration", unit=MetricUnit.Seconds, value=duration)
        metrics.add_metric(name="SyncRunsCompleted", unit=MetricUnit.Count, value=1)
