"""The run report in S3: per-record failures and conflicts as JSON Lines, and the run summary.

``s3://<bucket>/customer-sync/runs/<run_id>/records-00001.jsonl`` ... one object per checkpoint that had
something to say (S3 objects cannot be appended to, and a run spans invocations), then ``summary.json``.
Lines are written before the checkpoint that commits their chunk, so a crash can repeat a line but never
lose one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PREFIX = "customer-sync/runs"


def run_prefix(run_id: str) -> str:
    return f"{PREFIX}/{run_id}/"


class Report:
    def __init__(self, s3: S3Client, bucket: str):
        self.s3 = s3
        self.bucket = bucket
        self.pending: list[dict[str, Any]] = []

    def failure(self, direction: str, *, code: str, message: str, customer_id: str | None = None,
                salesforce_id: str | None = None) -> None:
        self.pending.append({"type": "failure", "direction": direction, "customer_id": customer_id,
                             "salesforce_id": salesforce_id, "error_code": code, "message": message[:1000]})

    def conflict(self, *, customer_id: str | None, salesforce_id: str | None, rule: str, winner: str,
                 salesforce_changed_at: str | None, erp_changed_at: str | None) -> None:
        self.pending.append({"type": "conflict", "customer_id": customer_id, "salesforce_id": salesforce_id,
                             "rule": rule, "winner": winner, "salesforce_changed_at": salesforce_changed_at,
                             "erp_changed_at": erp_changed_at})

    def flush(self, run_id: str, part: int) -> bool:
        """Write pending lines as part `part`; True if an object was written."""
        if not self.pending:
            return False
        now = datetime.now(UTC).isoformat()
        body = "".join(json.dumps({"run_id": run_id, "at": now, **line}, separators=(",", ":")) + "\n"
                       for line in self.pending)
        self.s3.put_object(Bucket=self.bucket, Key=f"{run_prefix(run_id)}records-{part:05d}.jsonl",
                           Body=body.encode("utf-8"), ContentType="application/x-ndjson")
        self.pending.clear()
        return True

    def summary(self, run_id: str, summary: dict[str, Any]) -> str:
        key = f"{run_prefix(run_id)}summary.json"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(summary, indent=2).encode("utf-8"),
                           ContentType="application/json")
        return key


def read_report(s3: S3Client, bucket: str, run_id: str) -> list[dict[str, Any]]:
    """Every line of a run's report, in order (for people and tests: ``aws s3 cp --recursive`` does the same)."""
    lines: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{run_prefix(run_id)}records-"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode("utf-8")
            lines.extend(json.loads(line) for line in body.splitlines() if line.strip())
    return lines
