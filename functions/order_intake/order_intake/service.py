"""Order intake: decide whether an order must be written, write it, remember it.

Free of HTTP and SQS: the API handler and the worker call `submit` / `submit_many` and shape the answer. The
ledger and the Salesforce adapter are passed in (ports), so the rules here read the same for both paths.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Literal, Protocol

from order_intake.errors import (
    Busy,
    IntakeError,
    SalesforceRejected,
    SalesforceUnavailable,
    StaleOrder,
    UnknownProducts,
)
from order_intake.ledger import LedgerEntry, LedgerUnavailable
from order_intake.models import Order
from order_intake.salesforce import PriceEntry, WriteRefused, Written, groups
from salesforce_access import (
    AllocationExhausted,
    AuthenticationError,
    BudgetExhausted,
    ConfigurationError,
    RequestLimitExceeded,
    SalesforceError,
    SessionExpired,
    TransientError,
)
from salesforce_access.observability import logger

Status = Literal["created", "updated", "unchanged", "superseded", "stale"]
WRITE_ATTEMPTS = 3  # a create that finds the order, or lines changed underneath: re-read and try again


@dataclass(frozen=True)
class Outcome:
    order_number: str
    status: Status
    ids: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        return {"order_number": self.order_number, "status": self.status, "salesforce": self.ids}


@dataclass(frozen=True)
class RetryAfter:
    """Seconds a caller should wait before trying again, per kind of outage."""

    unavailable: int = 30
    allocation: int = 900


class Ledger(Protocol):
    def get(self, order_number: str) -> LedgerEntry | None: ...
    def get_many(self, order_numbers: Sequence[str]) -> dict[str, LedgerEntry]: ...
    def claim(self, order_number: str, owner: str, now: float, expires: float) -> tuple[bool, LedgerEntry | None]: ...
    def release(self, order_number: str, owner: str) -> None: ...
    def put_many(self, entries: Sequence[LedgerEntry]) -> None: ...


class Salesforce(Protocol):
    def ensure_allocation(self, max_share: float) -> None: ...
    def resolve_products(self, codes: Sequence[str]) -> tuple[dict[str, PriceEntry], list[str], list[str]]: ...
    def existing_lines(self, order_numbers: Sequence[str]) -> dict[str, list[str]]: ...
    def write_order(self, order: Order, prices: Mapping[str, PriceEntry], old_lines: list[str] | None) -> Written: ...
    def write_orders(self, orders: Sequence[Order], prices: Mapping[str, PriceEntry],
                     old_lines: Mapping[str, list[str]]) -> list[Written]: ...


def _utc(order: Order) -> str | None:
    return order.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if order.updated_at else None


def _is_stale(order: Order, entry: LedgerEntry) -> bool:
    version = _utc(order)
    return bool(version and entry.updated_at and version < entry.updated_at)


def _newer(order: Order, than: Order) -> bool:
    """The later of two versions in one batch: by updated_at, else the one queued later."""
    mine, theirs = _utc(order), _utc(than)
    return not (mine and theirs and mine < theirs)


def rejected(refused: WriteRefused) -> SalesforceRejected:
    errors = [{**error, "where": failure.where} for failure in refused.failures for error in failure.errors]
    first = errors[0] if errors else {"errorCode": "UNKNOWN", "message": ""}
    return SalesforceRejected(f"Salesforce refused the order ({first['errorCode']}: {first['message']}); "
                              f"nothing was written", errors)


@contextmanager
def salesforce_errors(retry: RetryAfter) -> Iterator[None]:
    """The layer's typed errors as the API's answers. Messages name the condition, never a credential."""
    try:
        yield
    except (RequestLimitExceeded, AllocationExhausted):
        raise SalesforceUnavailable("the Salesforce API allocation is used up; try again later",
                                    retry.allocation) from None
    except (TransientError, BudgetExhausted) as exc:
        logger.warning("Salesforce unavailable", extra={"error": str(exc)})
        raise SalesforceUnavailable("Salesforce is unavailable; nothing was written", retry.unavailable) from None
    except (SessionExpired, AuthenticationError, ConfigurationError) as exc:
        logger.error("cannot authenticate to Salesforce", extra={"error": str(exc)})
        raise SalesforceUnavailable("Salesforce is unavailable; nothing was written", retry.unavailable) from None
    except SalesforceError as exc:  # a refusal of our own request (a bug), not of the order
        logger.error("unexpected Salesforce error", extra={"error": str(exc)})
        raise SalesforceUnavailable("Salesforce answered unexpectedly; nothing was written",
                                    retry.unavailable) from None


@dataclass
class OrderIntake:
    ledger: Ledger
    salesforce: Salesforce
    max_share: float = 0.9  # of the daily API allocation; the async worker is given less
    retry: RetryAfter = field(default_factory=RetryAfter)
    on_ledger_error: Callable[[str], None] = lambda operation: None
    claim_seconds: float = 60.0  # how long a claim outlives a crash: the invocation's remaining time + a margin
    clock: Callable[[], float] = time.time
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)  # this invocation's claims

    # -- one order (the API) ---------------------------------------------------------------------

    def submit(self, order: Order) -> Outcome:
        """Write `order` unless this exact version is already in Salesforce; raise an IntakeError otherwise."""
        fingerprint = order.fingerprint()
        entry = self._ledger_get(order.order_number)
        if entry and entry.fingerprint == fingerprint:
            return Outcome(order.order_number, "unchanged", entry.ids())
        if entry and _is_stale(order, entry):
            raise _stale(order, entry)
        claimed, entry = self._claim(order.order_number, entry)
        if not claimed:
            raise _busy(order)
        try:
            if entry and entry.fingerprint == fingerprint:  # written by the writer we waited for
                self._release([order.order_number])
                return Outcome(order.order_number, "unchanged", entry.ids())
            if entry and _is_stale(order, entry):
                raise _stale(order, entry)
            with salesforce_errors(self.retry):
                self.salesforce.ensure_allocation(self.max_share)
                prices = self._prices(order.product_codes)
                old = None if entry is None else self._old_lines(order)
                written = self._write(order, prices, old)
        except BaseException:
            self._release([order.order_number])
            raise
        self._remember([(order, fingerprint, written)])
        return Outcome(order.order_number, "created" if written.created else "updated", _ids(written))

    def _prices(self, codes: Sequence[str]) -> dict[str, PriceEntry]:
        prices, unknown, ambiguous = self.salesforce.resolve_products(codes)
        if unknown or ambiguous:
            raise UnknownProducts(sorted(unknown + ambiguous))
        return prices

    def _old_lines(self, order: Order) -> list[str]:
        return self.salesforce.existing_lines([order.order_number]).get(order.order_number.lower(), [])

    def _write(self, order: Order, prices: Mapping[str, PriceEntry], old: list[str] | None) -> Written:
        for _ in range(WRITE_ATTEMPTS):
            try:
                return self.salesforce.write_order(order, prices, old)
            except WriteRefused as refused:
                if not (refused.order_exists or refused.lines_changed):
                    raise rejected(refused) from None
                logger.info("order changed in Salesforce meanwhile: re-reading its lines",
                            extra={"order_number": order.order_number})
                old = self._old_lines(order)
        raise Busy(f"order {order.order_number} is being changed by another request; try again shortly")

    # -- many orders (the worker) ----------------------------------------------------------------

    def submit_many(self, items: Sequence[tuple[str, Order]]) -> dict[str, Outcome | IntakeError]:
        """Write a batch of (key, order); the result maps every key to its Outcome or its IntakeError.

        Each order is still all-or-none; orders are written together in as few Composite calls as the
        collection limits allow. A refused order does not hold the others back.
        """
        results: dict[str, Outcome | IntakeError] = {}
        latest: dict[str, tuple[str, Order]] = {}
        for key, order in items:
            number = order.order_number.lower()
            previous = latest.get(number)
            if previous is None or _newer(order, previous[1]):
                if previous is not None:
                    results[previous[0]] = Outcome(previous[1].order_number, "superseded")
                latest[number] = (key, order)
            else:
                results[key] = Outcome(order.order_number, "superseded")
        entries = self._ledger_get_many([order.order_number for _, order in latest.values()])
        pending: list[tuple[str, Order, str]] = []
        for number, (key, order) in latest.items():
            fingerprint = order.fingerprint()
            entry = entries.get(number)
            if entry and entry.fingerprint == fingerprint:
                results[key] = Outcome(order.order_number, "unchanged", entry.ids())
            elif entry and _is_stale(order, entry):
                results[key] = Outcome(order.order_number, "stale", entry.ids())
            else:
                pending.append((key, order, fingerprint))
        pending = self._claim_many(pending, entries, results)
        if not pending:
            return results
        try:
            self._write_many(pending, results)
        finally:  # written orders released their claim by recording their version; free the others
            self._release([order.order_number for key, order, _ in pending
                           if not (isinstance(results.get(key), Outcome)
                                   and results[key].status in ("created", "updated"))])
        return results

    def _claim_many(self, pending: list[tuple[str, Order, str]], entries: Mapping[str, LedgerEntry],
                    results: dict[str, Outcome | IntakeError]) -> list[tuple[str, Order, str]]:
        """Claim every pending order (one conditional write each); orders another writer holds are Busy."""
        claimed = []
        for key, order, fingerprint in pending:
            held, entry = self._claim(order.order_number, entries.get(order.order_number.lower()))
            if not held:
                results[key] = _busy(order)
            elif entry and entry.fingerprint == fingerprint:
                self._release([order.order_number])
                results[key] = Outcome(order.order_number, "unchanged", entry.ids())
            elif entry and _is_stale(order, entry):
                self._release([order.order_number])
                results[key] = Outcome(order.order_number, "stale", entry.ids())
            else:
                claimed.append((key, order, fingerprint))
        return claimed

    def _write_many(self, pending: list[tuple[str, Order, str]], results: dict[str, Outcome | IntakeError]) -> None:
        try:
            with salesforce_errors(self.retry):
                self.salesforce.ensure_allocation(self.max_share)
                codes = list(dict.fromkeys(code for _, order, _ in pending for code in order.product_codes))
                prices, unknown, ambiguous = self.salesforce.resolve_products(codes)
                missing = {code.lower() for code in unknown + ambiguous}
                writable = []
                for key, order, fingerprint in pending:
                    bad = sorted(code for code in order.product_codes if code.lower() in missing)
                    if bad:
                        results[key] = UnknownProducts(bad)
                    else:
                        writable.append((key, order, fingerprint))
                old = self.salesforce.existing_lines([order.order_number for _, order, _ in writable])
        except IntakeError as exc:
            results.update({key: exc for key, _, _ in pending if key not in results})
            return
        outage: IntakeError | None = None
        for group in groups([order for _, order, _ in writable], old):
            members = [writable[i] for i in group]
            if outage is not None:  # Salesforce is down: do not spend the remaining time retrying it
                results.update({key: outage for key, _, _ in members})
                continue
            try:
                self._write_group(members, prices, old, results)
            except IntakeError as exc:
                outage = exc
                results.update({key: exc for key, _, _ in members if key not in results})

    def _write_group(self, members: list[tuple[str, Order, str]], prices: Mapping[str, PriceEntry],
                     old: Mapping[str, list[str]], results: dict[str, Outcome | IntakeError]) -> None:
        remaining = list(members)
        for _ in range(WRITE_ATTEMPTS):
            try:
                with salesforce_errors(self.retry):
                    written = self.salesforce.write_orders([o for _, o, _ in remaining], prices, old)
            except WriteRefused as refused:
                blamed = {f.order_index for f in refused.failures}
                if None in blamed or refused.lines_changed:
                    break  # not attributable to single orders: write them one by one
                for index in blamed:
                    assert index is not None  # noqa: S101 - excluded above
                    own = WriteRefused([f for f in refused.failures if f.order_index == index])
                    results[remaining[index][0]] = rejected(own)
                remaining = [m for i, m in enumerate(remaining) if i not in blamed]
                if not remaining:
                    return
                continue
            self._remember([(order, fingerprint, w) for (_, order, fingerprint), w in zip(remaining, written,
                                                                                          strict=True)])
            for (key, order, _), w in zip(remaining, written, strict=True):
                results[key] = Outcome(order.order_number, "created" if w.created else "updated", _ids(w))
            return
        for key, order, fingerprint in remaining:  # isolate the culprit(s): each order in its own Composite
            try:
                with salesforce_errors(self.retry):
                    one = self._write(order, prices, old.get(order.order_number.lower(), []))
            except SalesforceRejected as exc:
                results[key] = exc
                continue
            self._remember([(order, fingerprint, one)])
            results[key] = Outcome(order.order_number, "created" if one.created else "updated", _ids(one))

    # -- the ledger: failures there never fail an order ------------------------------------------

    def _ledger_get(self, order_number: str) -> LedgerEntry | None:
        try:
            return self.ledger.get(order_number)
        except LedgerUnavailable as exc:
            logger.warning("order ledger unreadable: writing without it", extra={"error": str(exc)})
            self.on_ledger_error("read")
            return None

    def _ledger_get_many(self, order_numbers: Sequence[str]) -> dict[str, LedgerEntry]:
        try:
            return self.ledger.get_many(order_numbers)
        except LedgerUnavailable as exc:
            logger.warning("order ledger unreadable: writing without it", extra={"error": str(exc)})
            self.on_ledger_error("read")
            return {}

    def _claim(self, order_number: str, entry: LedgerEntry | None) -> tuple[bool, LedgerEntry | None]:
        """(claimed, the entry recorded at the claim); an unreachable ledger never holds an order back."""
        now = self.clock()
        try:
            held, fresh = self.ledger.claim(order_number, self.owner, now, now + self.claim_seconds)
        except LedgerUnavailable as exc:
            logger.warning("order ledger unreachable: writing without a claim", extra={"error": str(exc)})
            self.on_ledger_error("claim")
            return True, entry
        return held, fresh if held else entry

    def _release(self, order_numbers: Sequence[str]) -> None:
        for number in order_numbers:
            try:
                self.ledger.release(number, self.owner)
            except LedgerUnavailable as exc:  # the claim lapses at its expiry
                logger.warning("order claim not released", extra={"error": str(exc)})
                self.on_ledger_error("release")

    def _remember(self, written: Sequence[tuple[Order, str, Written]]) -> None:
        entries = [LedgerEntry(order.order_number, fingerprint, w.account_id, w.order_id, w.item_ids, _utc(order))
                   for order, fingerprint, w in written]
        try:
            self.ledger.put_many(entries)
        except LedgerUnavailable as exc:
            # Salesforce has the order: answering an error now would make the caller send it again for nothing
            logger.warning("order ledger not updated", extra={"error": str(exc), "orders": len(entries)})
            self.on_ledger_error("write")


def _stale(order: Order, entry: LedgerEntry) -> StaleOrder:
    return StaleOrder(f"a newer version of order {order.order_number} (updated_at {entry.updated_at}) "
                      f"has already been written", order_number=order.order_number)


def _busy(order: Order) -> Busy:
    return Busy(f"order {order.order_number} is being written by another request; send the same request again",
                order_number=order.order_number)


def _ids(written: Written) -> dict[str, Any]:
    return {"account_id": written.account_id, "order_id": written.order_id,
            "order_item_ids": list(written.item_ids)}
