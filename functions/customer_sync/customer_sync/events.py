"""What arrives at the edge: the start event (EventBridge Scheduler's input, or an operator's on-demand
invocation) and the step message on the sync's queue, validated before anything is locked or read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, field_validator, model_validator

MAX_ERRORS_SHOWN = 10
EARLIEST_SINCE = datetime(2000, 1, 1, tzinfo=UTC)  # a backfill from before this is a mistake (use mode full)
Mode = Literal["incremental", "full", "backfill"]


class StartRequest(BaseModel):
    """The start event: a nightly incremental run unless told otherwise."""

    model_config = ConfigDict(extra="forbid")

    mode: Mode = "incremental"
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


class StepMessage(BaseModel):
    """One step of a run: the worker claims exactly this step, so a duplicate delivery claims nothing."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    step: int


def problems(exc: ValidationError) -> list[str]:
    """Each problem as ``field: message`` (never the value: events may carry anything)."""
    return [f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors()][:MAX_ERRORS_SHOWN]
