"""The rule that picks the cheapest API for a number of records.

sObject Collections costs one API request per 200 records and answers synchronously with per-record
results; Bulk API 2.0 costs a handful of requests per job whatever its size (create, upload, close, polls,
results) but runs asynchronously and consumes the Bulk batch allocation. Salesforce's own guidance puts the
switch at 2,000 records (10 Collections requests); override with SALESFORCE_BULK_THRESHOLD.
"""

from __future__ import annotations

import os
from typing import Literal

DEFAULT_BULK_THRESHOLD = 2000

Api = Literal["collections", "bulk"]


def bulk_threshold() -> int:
    """The configured threshold: SALESFORCE_BULK_THRESHOLD or 2,000."""
    raw = os.environ.get("SALESFORCE_BULK_THRESHOLD")
    return int(raw) if raw else DEFAULT_BULK_THRESHOLD


def choose_api(record_count: int, threshold: int | None = None) -> Api:
    """``"collections"`` for up to `threshold` records, ``"bulk"`` above."""
    if record_count < 0:
        raise ValueError("record_count must be >= 0")
    limit = bulk_threshold() if threshold is None else threshold
    return "collections" if record_count <= limit else "bulk"
