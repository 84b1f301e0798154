"""The ERP adapter: the one module to change for a real ERP. It speaks the inventory API documented in
the ERP stand-in's README (tooling/stand-ins) and turns its answers and failures into the domain's
StockLevel and ErpFailure types.

Every call has a connect and a read timeout, both cut to what is left of the request's budget; the whole
answer must arrive before the deadline (a trickling body cannot stretch it). Reads are safe to repeat, so
connection errors, timeouts, 429 and 502/503/504 are retried, with jittered backoff, only while the budget
still holds a full attempt.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar
from urllib.parse import quote

import requests
from pydantic import BaseModel, ValidationError

from .deadline import Deadline
from .errors import ErpBadResponse, ErpFailure, ErpTimeout, ErpUnavailable
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
                 api_key: Callable[[bool], str | None] = lambda refresh: None,
                 session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self._api_key = api_key  # api_key(refresh) -> key; refresh=True after a 401 (the key may have rotated)
        self._session = session or requests.Session()
        self._sleep = sleep

    def lookup(self, skus: Sequence[str], deadline: Deadline) -> Lookup:
        if len(skus) == 1:
            status, body = self._call("GET", f"/inventory/items/{quote(skus[0], safe='')}", None, deadline)
            if status == 404:
                return Lookup({}, [skus[0]])
            item = _parse(_ErpItem, body)
            return Lookup({item.sku: item.to_domain()}, [])
        found: dict[str, StockLevel] = {}
        not_found: list[str] = []
        for start in range(0, len(skus), MAX_SKUS_PER_QUERY):
            chunk = list(skus[start:start + MAX_SKUS_PER_QUERY])
            status, body = self._call("POST", "/inventory/stock-queries", {"skus": chunk}, deadline)
            result = _parse(_ErpStockQuery, body)
            found.update({item.sku: item.to_domain() for item in result.items})
            not_found += result.not_found
        return Lookup(found, not_found)

    # -- HTTP ---------------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, payload: object, deadline: Deadline) -> tuple[int, bytes]:
        """(status, body) of a 200 or 404; raises ErpFailure for everything else."""
        refreshed_key = False
        attempt = 0
        while True:
            attempt += 1
            try:
                status, headers, body = self._attempt(method, path, payload, deadline, refreshed_key)
            except ErpFailure as failure:
                if not self._may_retry(attempt, deadline, full_attempt=isinstance(failure, ErpTimeout)):
                    raise
                self._backoff(attempt)
                continue
            if status in (200, 404):
                return status, body
            if status == 401 and not refreshed_key:
                refreshed_key = True  # once: fetch the key again, in case it was rotated
                attempt -= 1
                continue
            if status in RETRYABLE_STATUSES:
                retry_after = _retry_after(headers)
                fits = retry_after + self.connect_timeout + 0.2 < deadline.remaining()
                if fits and self._may_retry(attempt, deadline, False):
                    self._backoff(attempt, retry_after)
                    continue
                raise ErpUnavailable(f"the ERP answered {status} and is unavailable; retry later",
                                     retry_after=max(int(retry_after), 1))
            if status in (401, 403):
                raise ErpBadResponse(f"the ERP refused this function's credentials ({status})")
            raise ErpBadResponse(f"the ERP answered {status} to {method} {path.split('/')[1]}")

    def _attempt(self, method: str, path: str, payload: object, deadline: Deadline,
                 refresh_key: bool) -> tuple[int, requests.structures.CaseInsensitiveDict, bytes]:
        remaining = deadline.remaining()
        if remaining <= 0.01:
            raise ErpTimeout("the ERP did not answer within the latency budget")
        headers = {"Accept": "application/json"}
        key = self._api_key(refresh_key)
        if key:
            headers["X-Api-Key"] = key
        try:
            with self._session.request(method, self.base_url + path, json=payload, headers=headers, stream=True,
                                       timeout=(min(self.connect_timeout, remaining),
                                                min(self.read_timeout, remaining))) as response:
                body = _read_within(response, deadline)
                return response.status_code, response.headers, body
        except requests.Timeout:
            raise ErpTimeout("the ERP did not answer in time") from None
        except requests.ConnectionError:
            raise ErpUnavailable("the ERP could not be reached") from None
        except requests.RequestException:
            raise ErpBadResponse("the ERP's answer could not be read") from None

    def _may_retry(self, attempt: int, deadline: Deadline, full_attempt: bool) -> bool:
        """Another attempt only if allowed and the budget holds it (a whole read timeout after a timeout)."""
        if attempt >= self.max_attempts:
            return False
        needed = self.connect_timeout + self.read_timeout if full_attempt else self.connect_timeout
        return deadline.remaining() > needed + 0.2

    def _backoff(self, attempt: int, at_least: float = 0.0) -> None:
        self._sleep(max(at_least, random.uniform(0.05, 0.2 * 2 ** (attempt - 1))))  # noqa: S311 - jitter


def _read_within(response: requests.Response, deadline: Deadline) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=16384):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ErpBadResponse("the ERP's answer is too large")
        chunks.append(chunk)
        if deadline.expired():
            raise ErpTimeout("the ERP's answer did not arrive within the latency budget")
    return b"".join(chunks)


def _retry_after(headers: requests.structures.CaseInsensitiveDict) -> float:
    value = headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else 0.0


def _parse(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError:
        raise ErpBadResponse("the ERP's answer is not the inventory document this function expects") from None
