"""Settings from the environment (template.yaml sets them; docs/remote-call-in.md lists them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from order_intake.service import RetryAfter


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    state_table: str
    signing_secret_arn: str | None
    queue_url: str | None
    dead_letter_queue_url: str | None
    signature_tolerance: int
    signing_secret_max_age: int
    product_cache_seconds: float
    sync_max_share: float
    async_max_share: float
    retry: RetryAfter
    ledger_ttl_days: int
    max_body_bytes: int

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(
            state_table=_required("STATE_TABLE_NAME"),
            signing_secret_arn=os.environ.get("ORDER_SIGNING_SECRET_ARN") or None,
            queue_url=os.environ.get("ORDER_QUEUE_URL") or None,
            dead_letter_queue_url=os.environ.get("ORDER_DLQ_URL") or None,
            signature_tolerance=int(_number("SIGNATURE_TOLERANCE_SECONDS", 300)),
            signing_secret_max_age=int(_number("SIGNING_SECRET_MAX_AGE", 300)),
            product_cache_seconds=_number("PRODUCT_CACHE_SECONDS", 300),
            sync_max_share=_number("SYNC_API_MAX_SHARE", 0.9),
            async_max_share=_number("ASYNC_API_MAX_SHARE", 0.7),
            retry=RetryAfter(unavailable=int(_number("RETRY_AFTER_UNAVAILABLE", 30)),
                             allocation=int(_number("RETRY_AFTER_ALLOCATION", 900))),
            ledger_ttl_days=int(_number("ORDER_LEDGER_TTL_DAYS", 400)),
            max_body_bytes=int(_number("MAX_BODY_BYTES", 5 * 1024 * 1024)),
        )
