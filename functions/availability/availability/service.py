"""The domain: availability from stock levels, with a short cache, stale-if-error and a circuit breaker.

No AWS and no HTTP here: the ERP is an ``InventorySource`` (erp.py is the HTTP one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from edge_kit.outside_http import Budget

from .breaker import CircuitBreaker
from .cache import StaleCache
from .errors import CircuitOpen, ErpFailure, SkuNotFound


@dataclass(frozen=True)
class WarehouseStock:
    code: str
    name: str
    on_hand: int
    available: int


@dataclass(frozen=True)
class StockLevel:
    sku: str
    on_hand: int
    available: int
    warehouses: tuple[WarehouseStock, ...]
    as_of: datetime


@dataclass(frozen=True)
class Lookup:
    found: dict[str, StockLevel]
    not_found: list[str]


class InventorySource(Protocol):
    def lookup(self, skus: Sequence[str], deadline: Budget) -> Lookup:
        """Stock for these (unique) SKUs; raises ErpFailure subclasses when the ERP cannot answer."""
        ...


@dataclass(frozen=True)
class ItemAnswer:
    sku: str
    requested_quantity: int
    stock: StockLevel
    stale: bool

    @property
    def available(self) -> bool:
        return self.stock.available >= self.requested_quantity


@dataclass
class Outcome:
    answers: list[ItemAnswer]
    not_found: list[str]
    cache_hits: int = 0
    erp_called: bool = False
    erp_failure: ErpFailure | None = None  # set when the answer is stale because of it

    @property
    def stale(self) -> bool:
        return any(a.stale for a in self.answers)


class AvailabilityService:
    def __init__(self, source: InventorySource, cache: StaleCache[StockLevel], breaker: CircuitBreaker):
        self.source = source
        self.cache = cache
        self.breaker = breaker

    def check(self, wanted: Sequence[tuple[str, int]], deadline: Budget) -> Outcome:
        """Availability of each (sku, quantity), in order; unknown SKUs are listed in ``not_found``."""
        skus = list(dict.fromkeys(sku for sku, _ in wanted))
        levels: dict[str, StockLevel] = {}
        for sku in skus:
            cached = self.cache.fresh(sku)
            if cached is not None:
                levels[sku] = cached
        outcome = Outcome([], [], cache_hits=len(levels))
        stale: set[str] = set()
        missing = [sku for sku in skus if sku not in levels]
        if missing:
            try:
                lookup = self._call_erp(missing, deadline, outcome)
            except ErpFailure as failure:
                fallback = {sku: self.cache.stale(sku) for sku in missing}
                if any(level is None for level in fallback.values()):
                    raise
                outcome.erp_failure = failure
                stale = set(missing)
                levels.update({sku: level for sku, level in fallback.items() if level is not None})
            else:
                for sku, level in lookup.found.items():
                    self.cache.put(sku, level)
                levels.update(lookup.found)
                outcome.not_found = [sku for sku in missing if sku in set(lookup.not_found)]
        outcome.answers = [ItemAnswer(sku, quantity, levels[sku], sku in stale)
                           for sku, quantity in wanted if sku in levels]
        return outcome

    def check_one(self, sku: str, quantity: int, deadline: Budget) -> tuple[ItemAnswer, Outcome]:
        outcome = self.check([(sku, quantity)], deadline)
        if not outcome.answers:
            raise SkuNotFound(f"the ERP has no product with SKU {sku}")
        return outcome.answers[0], outcome

    def _call_erp(self, skus: list[str], deadline: Budget, outcome: Outcome) -> Lookup:
        if not self.breaker.allow():
            raise CircuitOpen("the ERP is failing; calls are paused for a moment (circuit open)",
                              retry_after=self.breaker.retry_after())
        outcome.erp_called = True
        try:
            lookup = self.source.lookup(skus, deadline)
        except Exception:  # an ERP failure, or a bug: either way a half-open trial must not stay in flight
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return lookup
