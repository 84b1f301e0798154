"""The ERP adapter: the one module to change for a real ERP. It speaks the inventory API documented in
the ERP stand-in's README (tooling/stand-ins) and turns its answers and failures into the domain's
StockLevel and ErpFailure types.

Timeouts, retries and the key are the edge kit's (``edge_kit.outside_http``): every call's connect and read
timeouts are cut to what is left of the request's deadline and the whole answer must arrive before it. Both
calls are reads (a stock query is a POST only for its body), so connection errors, timeouts, 429 and
502/503/504 are retried with jittered backoff, honouring a Retry-After, only while the deadline still holds a
full attempt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from edge_kit.outside_http import (
    ApiKeySource,
    Budget,
    OutsideBadAnswer,
    OutsideHttpClient,
    OutsideResponse,
    OutsideRetry,
    OutsideTimeout,
    OutsideUnreachable,
    Timeouts,
)

from .errors import ErpBadResponse, ErpTimeout, ErpUnavailable
from .service import Lookup, StockLevel, WarehouseStock

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_SKUS_PER_QUERY = 200  # the ERP's limit for POST /inventory/stock-queries
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

M = TypeVar("M", bound=BaseModel)
class _ErpWarehouse(BaseModel):
    code: str
    name: str = ""
    on_hand: int
    available: int


class _ErpItem(BaseModel):
    sku: str
    on_hand: int
    available: int
    warehouses: list[_ErpWarehouse]
    as_of: datetime

    def to_domain(self) -> StockLevel:
        return StockLevel(self.sku, self.on_hand, self.available,
                          tuple(WarehouseStock(w.code, w.name or w.code, w.on_hand, w.available)
                                for w in self.warehouses), self.as_of)


class _ErpStockQuery(BaseModel):
    items: list[_ErpItem]
    not_found: list[str]


class ErpInventoryClient:
    """``InventorySource`` over the ERP's HTTP API."""

    def __init__(self, base_url: str, *, connect_timeout: float, read_timeout: float, max_attempts: int,
                 api_key: str | ApiKeySource | None = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        # Any Retry-After the deadline holds is waited for: the deadline, not a cap, decides.
        retry = OutsideRetry(max_attempts=max_attempts, statuses=RETRYABLE_STATUSES, max_retry_after=math.inf)
        self.http = OutsideHttpClient("erp", base_url, timeouts=Timeouts(connect_timeout, read_timeout), retry=retry,
                                      api_key=api_key, max_body_bytes=MAX_BODY_BYTES, session=session, sleep=sleep)

    def lookup(self, skus: Sequence[str], deadline: Budget) -> Lookup:
        if len(skus) == 1:
            answer = self._call("GET", f"/inventory/items/{quote(skus[0], safe='')}", None, deadline)
            if answer.status == 404:
                return Lookup({}, [skus[0]])
            item = _parse(_ErpItem, answer.body)
            return Lookup({item.sku: item.to_domain()}, [])
        found: dict[str, StockLevel] = {}
        not_found: list[str] = []
        for start in range(0, len(skus), MAX_SKUS_PER_QUERY):
            chunk = list(skus[start:start + MAX_SKUS_PER_QUERY])
            result = _parse(_ErpStockQuery, self._call("POST", "/inventory/stock-queries", {"skus": chunk},
                                                       deadline).body)
            found.update({item.sku: item.to_domain() for item in result.items})
            not_found += result.not_found
        return Lookup(found, not_found)

    def _call(self, method: str, path: str, payload: object, deadline: Budget) -> OutsideResponse:
        """A 200 or 404 answer; raises ErpFailure for everything else."""
        try:
            answer = self.http.request(method, path, idempotent=True, deadline=deadline, json=payload)
        except OutsideTimeout:
            raise ErpTimeout("the ERP did not answer within the latency budget") from None
        except OutsideUnreachable:
            raise ErpUnavailable("the ERP could not be reached") from None
        except OutsideBadAnswer:
            raise ErpBadResponse("the ERP's answer could not be read or is too large") from None
        status = answer.status
        if status in (200, 404):
            return answer
        if status in RETRYABLE_STATUSES:
            raise ErpUnavailable(f"the ERP answered {status} and is unavailable; retry later",
                                 retry_after=max(int(answer.retry_after or 0), 1))
        if status in (401, 403):
            raise ErpBadResponse(f"the ERP refused this function's credentials ({status})")
        raise ErpBadResponse(f"the ERP answered {status} to {method} {path.split('/')[1]}")


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError:
        raise ErpBadResponse("the ERP's answer is not the inventory document this function expects") from None
