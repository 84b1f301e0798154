"""What a fired schedule led to: `python -m local fire` waits for it instead of printing only "started".

A schedule's function often only starts the work (the customer sync's start function queues steps for its
worker). So after the function answers, the outcome is awaited: for a run with a `run_id` in the answer and a
state table (the customer sync), its run state until it is completed or paused, then the stack idle and the
run's summary from S3; for anything else, the stack idle (every queue drained, nothing in flight).
"""

from __future__ import annotations

import json
import time
from typing import Any

FINAL = ("completed", "paused", "failed")
STATE_TABLE = "StateTable"  # template.yaml's customer sync state (runs, locks, watermarks)
REPORT_BUCKET = "CustomerSyncReportBucket"

__all__ = ["follow"]


def _run_state(stack: Any, run_id: str) -> dict[str, Any] | None:
    table = stack.model.values.ref(STATE_TABLE)
    item = stack.client("dynamodb").get_item(TableName=table, Key={"id": {"S": f"customer-sync#run#{run_id}"}},
                                             ConsistentRead=True).get("Item")
    return json.loads(item["state"]["S"]) if item and "state" in item else None


def _summary(stack: Any, run_id: str) -> dict[str, Any] | None:
    if REPORT_BUCKET not in stack.model.resources:
        return None
    bucket = stack.model.values.ref(REPORT_BUCKET)
    try:
        body = stack.client("s3").get_object(Bucket=bucket, Key=f"customer-sync/runs/{run_id}/summary.json")
    except Exception:  # no summary (a paused run has none): the run state says what happened
        return None
    return dict(json.loads(body["Body"].read()))


def follow(stack: Any, result: Any, timeout: float, clock: Any = time.monotonic) -> dict[str, Any]:
    """{"ok", "result", "outcome"}: ok only when the function succeeded and what it started finished well."""
    answer = result.to_json()
    if not result.ok:
        return {"ok": False, "result": answer, "outcome": {"reason": "the function failed"}}
    deadline = clock() + timeout
    run_id = answer.get("run_id") if isinstance(answer, dict) else None
    if run_id and STATE_TABLE in stack.model.resources:
        if answer.get("status") == "rejected":
            return {"ok": False, "result": answer, "outcome": {"reason": "the run was rejected"}}
        state = None
        while clock() < deadline:
            state = _run_state(stack, run_id)
            if state and state.get("status") in FINAL:
                break
            time.sleep(0.2)
        idle = stack.wait_idle(max(deadline - clock(), 0.5))
        status = (state or {}).get("status", "unknown")
        outcome: dict[str, Any] = {"run_id": run_id, "status": status if status in FINAL else f"{status} (timed out)",
                                   "idle": idle}
        if state and state.get("pause_reason"):
            outcome["pause_reason"] = state["pause_reason"]
        if state:
            outcome["counters"] = state.get("counters", {})
        summary = _summary(stack, run_id) if status == "completed" else None
        if summary is not None:
            outcome["summary"] = summary
        ok = status == "completed" and (summary is None or not summary.get("failed"))
        return {"ok": ok, "result": answer, "outcome": outcome}
    if isinstance(answer, dict) and answer.get("status") == "rejected":
        return {"ok": False, "result": answer, "outcome": {"reason": "rejected"}}
    idle = stack.wait_idle(timeout)
    return {"ok": idle, "result": answer, "outcome": {"idle": idle} if idle else
            {"idle": False, "reason": f"the stack was still busy after {timeout:g} s"}}
