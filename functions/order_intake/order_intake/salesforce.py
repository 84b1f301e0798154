"""The Salesforce side of order intake: price book look-ups and the all-or-none order writes.

One order (the API) is written by ONE Composite request with ``allOrNone``: upsert the Account by
ERP_Customer_Id__c, write the Order (``AccountId = @{refAccount.id}``), delete the lines it had (updates only)
and create its OrderItems through an embedded sObject Collections subrequest (up to 200 lines). Either all of
it is committed or nothing is.

Why product codes are resolved by a query *before* the write rather than by query subrequests inside it:
a reference to ``records[0]`` of an empty result cannot say which product was unknown (the caller gets a
generic PROCESSING_HALTED instead of a 422 naming the product), one query subrequest per product would hit
Composite's limit of five query/collection subrequests, and a single ``IN`` query's rows cannot be matched
to lines by index. Price book entries change rarely, so they are cached in the container: in steady state a
new order costs exactly one API call, the Composite.

Why a new order is *inserted* (POST) rather than upserted: if the order already exists in Salesforce (its
ledger record was lost, or two identical requests raced) the insert fails on the unique
Ecommerce_Order_Number__c, the whole Composite rolls back, and the caller re-reads the existing lines and
replaces them. An upsert would have added a second set of lines instead.

Many orders (the SQS worker) are written by one Composite per group of orders whose four sObject Collections
subrequests (Accounts, Orders, old lines, new lines) each stay within 200 records, still all-or-none. Orders
and lines find their parents by external id (``"Account": {"ERP_Customer_Id__c": ...}``), since a collection
record cannot reference one result of another collection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from salesforce_access import Subrequest, soql

if TYPE_CHECKING:
    from order_intake.models import Address, Order
    from salesforce_access import CompositeResult, SalesforceAccess

ACCOUNT_KEY = "ERP_Customer_Id__c"
ORDER_KEY = "Ecommerce_Order_Number__c"
COLLECTION_LIMIT = 200
QUERY_CHUNK = 200  # values per IN (...) list: keeps the SOQL statement far below its 100,000-character limit
_ROLLBACK_CODES = {"PROCESSING_HALTED", "ALL_OR_NONE_OPERATION_ROLLED_BACK"}


# -- results and failures ------------------------------------------------------------------------------

@dataclass(frozen=True)
class PriceEntry:
    id: str
    product_code: str
    pricebook_id: str


@dataclass(frozen=True)
class Written:
    """The Salesforce ids of one written order; `created` is True when the Order did not exist before."""

    account_id: str
    order_id: str
    item_ids: tuple[str, ...]
    created: bool


@dataclass(frozen=True)
class WriteFailure:
    """Why Salesforce refused a write: the subrequest or record at fault and its error(s)."""

    where: str  # "account", "order", "lines[2]", "old_lines"...
    errors: list[dict[str, Any]]
    order_index: int | None = None  # which order of a batch (None: not attributable)

    @property
    def codes(self) -> set[str]:
        return {str(e.get("errorCode")) for e in self.errors}


class WriteRefused(Exception):
    """The Composite was rolled back; `failures` holds the causes (never the PROCESSING_HALTED echoes)."""

    def __init__(self, failures: list[WriteFailure]):
        self.failures = failures
        super().__init__("; ".join(f"{f.where}: {', '.join(sorted(f.codes))}" for f in failures))

    @property
    def order_exists(self) -> bool:
        """A create failed because the order number is taken: the order exists in Salesforce already."""
        return any(f.where == "order" and "DUPLICATE_VALUE" in f.codes for f in self.failures)

    @property
    def lines_changed(self) -> bool:
        """Deleting the old lines failed because they are gone: someone changed the order concurrently."""
        return any(f.where == "old_lines" and f.codes & {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY",
                                                         "NOT_FOUND"} for f in self.failures)


def _errors(body: Any) -> list[dict[str, Any]]:
    """Salesforce's error envelopes (REST ``errorCode`` or Collections ``statusCode``) in one shape."""
    items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    found = []
    for item in items:
        if isinstance(item, dict):
            code = item.get("errorCode") or item.get("statusCode")
            found.append({"errorCode": code, "message": item.get("message", ""), "fields": item.get("fields") or []})
    return found


def _real(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in errors if e["errorCode"] not in _ROLLBACK_CODES]


Locate = Callable[[str, int | None], tuple[str, int | None]]


def _failures(result: CompositeResult, locate: Locate) -> list[WriteFailure]:
    """The causes of a rolled-back Composite; `locate(reference, record_index)` names the part at fault."""
    failures = []
    for response in result.responses:
        body = response.body
        if response.ok and isinstance(body, list):  # a collection answers 200 with per-record results
            for index, record in enumerate(body):
                if isinstance(record, dict) and record.get("success") is False:
                    errors = _real(_errors(record.get("errors")))
                    if errors:
                        where, order_index = locate(response.reference_id, index)
                        failures.append(WriteFailure(where, errors, order_index))
        elif not response.ok:
            errors = _real(_errors(body))
            if errors:
                where, order_index = locate(response.reference_id, None)
                failures.append(WriteFailure(where, errors, order_index))
    if not failures:  # only halted echoes: report them rather than nothing
        failures.append(WriteFailure("composite", [e for r in result.responses for e in _errors(r.body)][:5]))
    return failures


# -- field mapping -------------------------------------------------------------------------------------

def _number(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def _address(prefix: str, address: Address | None) -> dict[str, Any]:
    """Billing*/Shipping* fields; every one is sent (None clears a value a previous version had set)."""
    values = address or None
    return {
        f"{prefix}Street": values.street if values else None,
        f"{prefix}City": values.city if values else None,
        f"{prefix}PostalCode": values.postal_code if values else None,
        f"{prefix}Country": values.country if values else None,
    }


def account_fields(order: Order) -> dict[str, Any]:
    """Only what the platform knows: fields maintained in Salesforce (owner, industry...) are left alone."""
    fields: dict[str, Any] = {"Name": order.customer.name}
    if order.customer.phone:
        fields["Phone"] = order.customer.phone
    if order.billing_address:
        fields.update({k: v for k, v in _address("Billing", order.billing_address).items() if v is not None})
    return fields


def order_fields(order: Order, pricebook_id: str) -> dict[str, Any]:
    return {
        "EffectiveDate": order.order_date.isoformat(),
        "Status": "Draft",
        "Pricebook2Id": pricebook_id,
        "Description": order.description,
        **_address("Billing", order.billing_address),
        **_address("Shipping", order.shipping_address),
    }


def line_fields(order: Order, prices: Mapping[str, PriceEntry]) -> list[dict[str, Any]]:
    return [
        {
            "PricebookEntryId": prices[line.product_code.lower()].id,
            "Quantity": _number(line.quantity),
            "UnitPrice": _number(line.unit_price),
            **({"Description": line.description} if line.description else {}),
        }
        for line in order.lines
    ]


def _key(value: str) -> str:
    return quote(value, safe="")


def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# -- the adapter ---------------------------------------------------------------------------------------

@dataclass
class ProductCatalog:
    """Active standard price book entries by ProductCode (case-insensitive), cached for `ttl` seconds.

    Only found entries are cached, so a product added to the price book is picked up by the next order that
    needs it; a deactivated one is refused by Salesforce (422) until the cache entry expires.
    """

    ttl: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[float, PriceEntry]] = field(default_factory=dict)

    def cached(self, codes: Iterable[str]) -> tuple[dict[str, PriceEntry], list[str]]:
        now = self.clock()
        found, missing = {}, []
        for code in codes:
            hit = self._entries.get(code.lower())
            if hit and now - hit[0] < self.ttl:
                found[code.lower()] = hit[1]
            else:
                missing.append(code)
        return found, missing

    def remember(self, entries: Iterable[PriceEntry]) -> None:
        now = self.clock()
        for entry in entries:
            self._entries[entry.product_code.lower()] = (now, entry)

    def clear(self) -> None:
        self._entries.clear()


class SalesforceOrders:
    """Reads and writes orders through the shared layer's access object (bound to the invocation)."""

    def __init__(self, access: SalesforceAccess, catalog: ProductCatalog):
        self.access = access
        self.catalog = catalog

    def ensure_allocation(self, max_share: float) -> None:
        """Stop before `max_share` of the org's daily API allocation is used (AllocationExhausted)."""
        self.access.ensure_allocation(max_share)

    # -- reads ---------------------------------------------------------------------------------------

    def resolve_products(self, codes: Iterable[str]) -> tuple[dict[str, PriceEntry], list[str], list[str]]:
        """(entries by lower-case code, unknown codes, ambiguous codes) for the given product codes."""
        wanted = list(dict.fromkeys(codes))
        found, missing = self.catalog.cached(wanted)
        rows: dict[str, list[PriceEntry]] = {}
        for chunk in _chunks(missing, QUERY_CHUNK):
            query = soql(
                "SELECT Id, Pricebook2Id, Product2.ProductCode FROM PricebookEntry "
                "WHERE Pricebook2.IsStandard = true AND IsActive = true AND Product2.IsActive = true "
                "AND Product2.ProductCode IN {codes}", codes=list(chunk))
            for row in self.access.query(query):
                code = (row.get("Product2") or {}).get("ProductCode") or ""
                rows.setdefault(code.lower(), []).append(PriceEntry(row["Id"], code, row["Pricebook2Id"]))
        ambiguous = [code for code in missing if len(rows.get(code.lower(), [])) > 1]
        unknown = [code for code in missing if code.lower() not in rows]
        fresh = [entries[0] for entries in rows.values() if len(entries) == 1]
        self.catalog.remember(fresh)
        found.update({entry.product_code.lower(): entry for entry in fresh})
        return found, unknown, ambiguous

    def existing_lines(self, order_numbers: Sequence[str]) -> dict[str, list[str]]:
        """OrderItem ids by lower-case order number, for the orders that exist in Salesforce."""
        lines: dict[str, list[str]] = {}
        for chunk in _chunks(list(order_numbers), QUERY_CHUNK):
            query = soql("SELECT Id, {key:field} FROM OrderItem WHERE {key:field} IN {numbers} ORDER BY Id",
                         key=f"Order.{ORDER_KEY}", numbers=list(chunk))
            for row in self.access.query(query):
                number = ((row.get("Order") or {}).get(ORDER_KEY) or "").lower()
                lines.setdefault(number, []).append(row["Id"])
        return lines

    # -- one order: one Composite --------------------------------------------------------------------

    def write_order(self, order: Order, prices: Mapping[str, PriceEntry], old_lines: list[str] | None) -> Written:
        """Write one order in one all-or-none Composite call.

        `old_lines` None means "believed new": the Order is inserted, and WriteRefused.order_exists tells the
        caller to read its lines and call again. A list (maybe empty) means "exists": the Order is upserted
        and those lines are replaced.
        """
        pricebook_id = prices[order.lines[0].product_code.lower()].pricebook_id
        account_url = f"sobjects/Account/{ACCOUNT_KEY}/{_key(order.customer.erp_customer_id)}"
        subrequests = [Subrequest(method="PATCH", url=account_url, reference_id="refAccount",
                                  body=account_fields(order))]
        body = {"AccountId": "@{refAccount.id}", **order_fields(order, pricebook_id)}
        if old_lines is None:
            subrequests.append(Subrequest(method="POST", url="sobjects/Order", reference_id="refOrder",
                                          body={**body, ORDER_KEY: order.order_number}))
        else:
            subrequests.append(Subrequest(method="PATCH", url=f"sobjects/Order/{ORDER_KEY}/{_key(order.order_number)}",
                                          reference_id="refOrder", body=body))
            for number, chunk in enumerate(_chunks(old_lines, COLLECTION_LIMIT)):
                subrequests.append(Subrequest(method="DELETE", reference_id=f"refOldLines{number}",
                                              url=f"composite/sobjects?ids={','.join(chunk)}&allOrNone=true"))
        records = [{"attributes": {"type": "OrderItem"}, "OrderId": "@{refOrder.id}", **line}
                   for line in line_fields(order, prices)]
        subrequests.append(Subrequest(method="POST", url="composite/sobjects", reference_id="refLines",
                                      body={"allOrNone": True, "records": records}))
        result = self.access.composite(subrequests, all_or_none=True)
        if not result.ok:
            def locate(reference: str, index: int | None) -> tuple[str, int | None]:
                if reference == "refLines":
                    return (f"lines[{index}]" if index is not None else "lines"), 0
                if reference.startswith("refOldLines"):
                    return "old_lines", 0
                return {"refAccount": "account", "refOrder": "order"}.get(reference, reference), 0

            raise WriteRefused(_failures(result, locate))
        responses = result.by_reference()
        order_body = responses["refOrder"].body or {}
        created = old_lines is None or bool(order_body.get("created"))
        return Written(account_id=responses["refAccount"].body["id"], order_id=order_body["id"],
                       item_ids=tuple(r["id"] for r in responses["refLines"].body), created=created)

    # -- many orders: one Composite of four collections per group -----------------------------------

    def write_orders(self, orders: Sequence[Order], prices: Mapping[str, PriceEntry],
                     old_lines: Mapping[str, list[str]]) -> list[Written]:
        """Write a group of orders (see `groups`) in one all-or-none Composite; results in input order."""
        customers: dict[str, dict[str, Any]] = {}
        customer_orders: dict[str, list[int]] = {}
        for index, order in enumerate(orders):  # one Account record per customer: the last order's data wins
            key = order.customer.erp_customer_id.lower()
            customers[key] = {"attributes": {"type": "Account"}, ACCOUNT_KEY: order.customer.erp_customer_id,
                              **account_fields(order)}
            customer_orders.setdefault(key, []).append(index)
        customer_keys = list(customers)
        order_records, line_records, line_owner, old_ids, old_owner = [], [], [], [], []
        for index, order in enumerate(orders):
            pricebook_id = prices[order.lines[0].product_code.lower()].pricebook_id
            order_records.append({"attributes": {"type": "Order"}, ORDER_KEY: order.order_number,
                                  "Account": {ACCOUNT_KEY: order.customer.erp_customer_id},
                                  **order_fields(order, pricebook_id)})
            for line in line_fields(order, prices):
                line_records.append({"attributes": {"type": "OrderItem"},
                                     "Order": {ORDER_KEY: order.order_number}, **line})
                line_owner.append(index)
            for item_id in old_lines.get(order.order_number.lower(), []):
                old_ids.append(item_id)
                old_owner.append(index)
        subrequests = [
            Subrequest(method="PATCH", url=f"composite/sobjects/Account/{ACCOUNT_KEY}", reference_id="accounts",
                       body={"allOrNone": True, "records": list(customers.values())}),
            Subrequest(method="PATCH", url=f"composite/sobjects/Order/{ORDER_KEY}", reference_id="orders",
                       body={"allOrNone": True, "records": order_records}),
        ]
        if old_ids:
            subrequests.append(Subrequest(method="DELETE", reference_id="oldLines",
                                          url=f"composite/sobjects?ids={','.join(old_ids)}&allOrNone=true"))
        subrequests.append(Subrequest(method="POST", url="composite/sobjects", reference_id="lines",
                                      body={"allOrNone": True, "records": line_records}))
        result = self.access.composite(subrequests, all_or_none=True)
        if not result.ok:
            def locate(reference: str, index: int | None) -> tuple[str, int | None]:
                if index is None:
                    return reference, None
                if reference == "accounts":
                    owners = customer_orders[customer_keys[index]]
                    return "account", owners[0] if len(owners) == 1 else None
                if reference == "orders":
                    return "order", index
                if reference == "oldLines":
                    return "old_lines", old_owner[index]
                if reference == "lines":
                    first = line_owner.index(line_owner[index])
                    return f"lines[{index - first}]", line_owner[index]
                return reference, None

            raise WriteRefused(_failures(result, locate))
        responses = result.by_reference()
        account_ids = {key: r["id"] for key, r in zip(customer_keys, responses["accounts"].body, strict=True)}
        order_results = responses["orders"].body
        item_ids: list[list[str]] = [[] for _ in orders]
        for owner, item in zip(line_owner, responses["lines"].body, strict=True):
            item_ids[owner].append(item["id"])
        return [
            Written(account_id=account_ids[order.customer.erp_customer_id.lower()], order_id=order_results[i]["id"],
                    item_ids=tuple(item_ids[i]), created=bool(order_results[i].get("created")))
            for i, order in enumerate(orders)
        ]


def groups(orders: Sequence[Order], old_lines: Mapping[str, list[str]],
           limit: int = COLLECTION_LIMIT) -> list[list[int]]:
    """Split orders (by index) so that each group's collections stay within `limit` records each."""
    result: list[list[int]] = []
    current: list[int] = []
    lines = old = 0
    for index, order in enumerate(orders):
        n_lines, n_old = len(order.lines), len(old_lines.get(order.order_number.lower(), []))
        if current and (len(current) + 1 > limit or lines + n_lines > limit or old + n_old > limit):
            result.append(current)
            current, lines, old = [], 0, 0
        current.append(index)
        lines += n_lines
        old += n_old
    if current:
        result.append(current)
    return result
