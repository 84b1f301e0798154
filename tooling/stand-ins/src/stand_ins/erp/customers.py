"""Customers: the ERP side of the batch synchronisation (contract in README.md).

Keys: the ERP's own ``customer_id`` (``C-000123``) and the Salesforce Account Id (``salesforce_id``), which
is the upsert key. Every change stamps ``updated_at`` (strictly increasing, so it can serve as a watermark)
and ``updated_by``; a write that changes nothing stamps nothing, so a sync never echoes its own writes.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .clock import StrictClock, format_time, parse_time
from .server import ErpError, Reply, Request

if TYPE_CHECKING:
    from .server import ErpApp

SALESFORCE_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
CUSTOMER_ID = re.compile(r"^C-\d{6,}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ADDRESS_FIELDS = ("street", "city", "postal_code", "country")
WRITABLE = ("name", "email", "phone", "billing_address", "active")
MAX_BULK = 500
MAX_PAGE = 500
DEFAULT_PAGE = 100

SEED = [
    ("Acme Industrial Ltd", "orders@acme.example", "+44 20 7946 0001", ("1 Dock Road", "London", "E16 1AA", "GB")),
    ("Brandt Maschinenbau GmbH", "einkauf@brandt.example", "+49 69 1234 5678",
     ("Hafenstrasse 9", "Frankfurt", "60327", "DE")),
    ("Coastal Water Works", "procurement@coastal.example", "+1 201 555 0100",
     ("200 River Dr", "Newark", "07102", "US")),
]


@dataclass
class Customer:
    customer_id: str
    salesforce_id: str | None
    name: str
    email: str | None
    phone: str | None
    billing_address: dict | None
    active: bool
    created_at: datetime
    updated_at: datetime
    updated_by: str

    def as_json(self) -> dict:
        return {"customer_id": self.customer_id, "salesforce_id": self.salesforce_id, "name": self.name,
                "email": self.email, "phone": self.phone, "billing_address": self.billing_address,
                "active": self.active, "created_at": format_time(self.created_at),
                "updated_at": format_time(self.updated_at), "updated_by": self.updated_by}


def _validate(body: dict, *, creating: bool) -> dict:
    """The writable fields of ``body``, checked; unknown fields are refused so a typo is never ignored."""
    unknown = sorted(set(body) - set(WRITABLE) - {"updated_by", "salesforce_id"})
    if unknown:
        raise ErpError(400, "UNKNOWN_FIELD", f"unknown field(s): {', '.join(unknown)}")
    fields = {k: body[k] for k in WRITABLE if k in body}
    if creating and "name" not in fields:
        raise ErpError(400, "REQUIRED_FIELD_MISSING", "name is required to create a customer")
    if "name" in fields and (not isinstance(fields["name"], str) or not 1 <= len(fields["name"].strip()) <= 255):
        raise ErpError(400, "INVALID_FIELD", "name must be a string of 1 to 255 characters")
    email = fields.get("email")
    if email is not None and (not isinstance(email, str) or not EMAIL.match(email)):
        raise ErpError(400, "INVALID_FIELD", "email is not a valid e-mail address")
    phone = fields.get("phone")
    if phone is not None and (not isinstance(phone, str) or len(phone) > 40):
        raise ErpError(400, "INVALID_FIELD", "phone must be a string of at most 40 characters")
    if "active" in fields and not isinstance(fields["active"], bool):
        raise ErpError(400, "INVALID_FIELD", "active must be true or false")
    address = fields.get("billing_address")
    if address is not None:
        if not isinstance(address, dict) or set(address) - set(ADDRESS_FIELDS):
            raise ErpError(400, "INVALID_FIELD", f"billing_address may hold only {', '.join(ADDRESS_FIELDS)}")
        if not all(v is None or isinstance(v, str) for v in address.values()):
            raise ErpError(400, "INVALID_FIELD", "billing_address values must be strings")
        fields["billing_address"] = {k: address.get(k) for k in ADDRESS_FIELDS}
    return fields


def _updated_by(body: dict) -> str:
    value = body.get("updated_by", "api")
    if not isinstance(value, str) or not 1 <= len(value) <= 80:
        raise ErpError(400, "INVALID_FIELD", "updated_by must be a string of 1 to 80 characters")
    return value


def _check_salesforce_id(value: object) -> str:
    if not isinstance(value, str) or not SALESFORCE_ID.match(value):
        raise ErpError(400, "INVALID_SALESFORCE_ID", f"not a 15 or 18 character Salesforce Id: {value!r}")
    return value


class Customers:
    """In-memory customers; the caller (ErpApp) holds the lock around every call.

    The listing by ``(updated_at, customer_id)`` reads a change log kept in that order: every stamp appends
    ``(updated_at, customer_id)`` (stamps only grow, so appending keeps it sorted), an entry whose customer
    has been stamped again since is skipped when read, and the log is compacted once stale entries outnumber
    live ones. A page is then a binary search plus O(page) (amortised), not a sort of every customer.
    """

    def __init__(self) -> None:
        self.clock = StrictClock()
        self.reset()

    def reset(self) -> None:
        """The seed customers, and nothing else; ids start again at C-000001."""
        self.clear()
        self._serial = 0
        for name, email, phone, (street, city, postal_code, country) in SEED:
            self._create(None, {"name": name, "email": email, "phone": phone, "active": True,
                                "billing_address": {"street": street, "city": city, "postal_code": postal_code,
                                                    "country": country}}, "seed")

    def clear(self) -> None:
        """No customers at all (tests and benchmarks that bring their own)."""
        self.by_id: dict[str, Customer] = {}
        self.by_salesforce_id: dict[str, str] = {}
        self._log: list[tuple[datetime, str]] = []
        self._serial = getattr(self, "_serial", 0)  # ids are never reused, even after a clear

    def create(self, body: dict) -> Customer:
        """A customer entered in the ERP (``POST /customers``): writable fields, optional ``salesforce_id``."""
        salesforce_id = body.get("salesforce_id")
        if salesforce_id is not None:
            _check_salesforce_id(salesforce_id)
            owner = self.by_salesforce_id.get(salesforce_id)
            if owner is not None:
                raise ErpError(409, "DUPLICATE_SALESFORCE_ID", f"{salesforce_id} belongs to customer {owner}")
        fields = _validate(body, creating=True)
        return self._create(salesforce_id, fields, _updated_by(body))

    def _create(self, salesforce_id: str | None, fields: dict, updated_by: str) -> Customer:
        self._serial += 1
        now = self.clock.stamp()
        customer = Customer(f"C-{self._serial:06d}", salesforce_id, fields["name"].strip(), fields.get("email"),
                            fields.get("phone"), fields.get("billing_address"), fields.get("active", True), now, now,
                            updated_by)
        self.by_id[customer.customer_id] = customer
        if salesforce_id:
            self.by_salesforce_id[salesforce_id] = customer.customer_id
        self._logged(customer)
        return customer

    def _stamp(self, customer: Customer, updated_by: str) -> None:
        customer.updated_at = self.clock.stamp()
        customer.updated_by = updated_by
        self._logged(customer)

    def _logged(self, customer: Customer) -> None:
        entry = (customer.updated_at, customer.customer_id)
        if not self._log or self._log[-1] < entry:
            self._log.append(entry)
        else:  # a stamp taken outside the lock arrived late: still kept in order
            bisect.insort(self._log, entry)
        if len(self._log) > 2 * len(self.by_id) + 1024:
            self._log = [item for item in self._log if self._live(item)]

    def _live(self, entry: tuple[datetime, str]) -> bool:
        customer = self.by_id.get(entry[1])
        return customer is not None and customer.updated_at == entry[0]

    def _apply(self, customer: Customer, fields: dict, updated_by: str) -> bool:
        """Apply changes; stamp only if something changed. True if it did."""
        if "name" in fields:
            fields = {**fields, "name": fields["name"].strip()}
        changed = {k: v for k, v in fields.items() if getattr(customer, k) != v}
        if not changed:
            return False
        for key, value in changed.items():
            setattr(customer, key, value)
        self._stamp(customer, updated_by)
        return True

    def get_by_salesforce_id(self, salesforce_id: str) -> Customer | None:
        customer_id = self.by_salesforce_id.get(salesforce_id)
        return self.by_id.get(customer_id) if customer_id else None

    def upsert(self, salesforce_id: str, body: dict) -> tuple[str, Customer]:
        """("created" | "updated" | "unchanged", customer)."""
        existing = self.get_by_salesforce_id(salesforce_id)
        fields = _validate(body, creating=existing is None)
        updated_by = _updated_by(body)
        if existing is None:
            return "created", self._create(salesforce_id, fields, updated_by)
        return ("updated" if self._apply(existing, fields, updated_by) else "unchanged"), existing

    def update(self, customer: Customer, body: dict) -> bool:
        """An edit of some fields and/or the Salesforce link; validated in full before anything changes."""
        if "salesforce_id" in body:
            salesforce_id = body["salesforce_id"]
            if salesforce_id is not None:
                _check_salesforce_id(salesforce_id)
                owner = self.by_salesforce_id.get(salesforce_id)
                if owner not in (None, customer.customer_id):
                    raise ErpError(409, "DUPLICATE_SALESFORCE_ID", f"{salesforce_id} belongs to customer {owner}")
        fields = _validate(body, creating=False)
        updated_by = _updated_by(body)
        relink = "salesforce_id" in body and body["salesforce_id"] != customer.salesforce_id
        if relink:
            if customer.salesforce_id:
                self.by_salesforce_id.pop(customer.salesforce_id, None)
            customer.salesforce_id = body["salesforce_id"]
            if customer.salesforce_id:
                self.by_salesforce_id[customer.salesforce_id] = customer.customer_id
        changed = self._apply(customer, fields, updated_by)
        if relink and not changed:
            self._stamp(customer, updated_by)
        return changed or relink

    def changed_since(self, since: datetime | None, after: tuple[datetime, str] | None, limit: int) -> list[Customer]:
        """Customers with updated_at >= since, ordered by (updated_at, customer_id), after the cursor key."""
        start = bisect.bisect_left(self._log, (since, "")) if since is not None else 0
        if after is not None:
            start = max(start, bisect.bisect_right(self._log, after))
        rows: list[Customer] = []
        for index in range(start, len(self._log)):
            entry = self._log[index]
            if self._live(entry):
                rows.append(self.by_id[entry[1]])
                if len(rows) >= limit:
                    break
        return rows


def _encode_cursor(since: str | None, last: Customer) -> str:
    raw = json.dumps({"s": since, "u": format_time(last.updated_at), "c": last.customer_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str | None, tuple[datetime, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return data["s"], (parse_time(str(data["u"])), str(data["c"]))
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise ErpError(400, "INVALID_CURSOR", "cursor is not one this API returned") from None


def _bulk_rows(req: Request) -> list:
    rows = req.json_object().get("customers")
    if not isinstance(rows, list) or not rows:
        raise ErpError(400, "INVALID_BULK", "customers must be a non-empty list")
    if len(rows) > MAX_BULK:
        raise ErpError(413, "TOO_MANY_CUSTOMERS", f"at most {MAX_BULK} customers per request, got {len(rows)}")
    return rows


def register(app: ErpApp, customers: Customers) -> None:
    def find(customer_id: str) -> Customer:
        customer = customers.by_id.get(customer_id)
        if customer is None:
            raise ErpError(404, "CUSTOMER_NOT_FOUND", f"no customer {customer_id}")
        return customer

    def list_customers(req: Request) -> Reply:
        cursor = req.arg("cursor")
        since_text = req.arg("updated_since")
        after = None
        if cursor:
            cursor_since, after = _decode_cursor(cursor)
            if since_text is not None and since_text != cursor_since:
                raise ErpError(400, "INVALID_CURSOR", "a cursor continues the listing it came from: "
                                                      "send the same updated_since or none")
            since_text = cursor_since
        try:
            since = parse_time(since_text) if since_text else None
        except ValueError as exc:
            raise ErpError(400, "INVALID_UPDATED_SINCE", f"updated_since is not an ISO 8601 time: {exc}") from None
        limit_text = req.arg("limit") or str(DEFAULT_PAGE)
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE:
            raise ErpError(400, "INVALID_LIMIT", f"limit must be an integer from 1 to {MAX_PAGE}")
        limit = int(limit_text)
        with app.lock:
            page = customers.changed_since(since, after, limit + 1)
            items = [c.as_json() for c in page[:limit]]
            next_cursor = _encode_cursor(since_text, page[limit - 1]) if len(page) > limit else None
        return Reply(200, {"items": items, "next_cursor": next_cursor})

    def get_customer(req: Request) -> Reply:
        with app.lock:
            return Reply(200, find(req.params["customer_id"]).as_json())

    def patch_customer(req: Request) -> Reply:
        body = req.json_object()
        with app.lock:
            customer = find(req.params["customer_id"])
            changed = customers.update(customer, body)
            return Reply(200, {"result": "updated" if changed else "unchanged", "customer": customer.as_json()})

    def deactivate(req: Request) -> Reply:
        body = req.json_object() if req.body.strip() else {}
        with app.lock:
            customer = find(req.params["customer_id"])
            changed = customers._apply(customer, {"active": False}, _updated_by(body))
            return Reply(200, {"result": "updated" if changed else "unchanged", "customer": customer.as_json()})

    def get_by_salesforce_id(req: Request) -> Reply:
        salesforce_id = _check_salesforce_id(req.params["salesforce_id"])
        with app.lock:
            customer = customers.get_by_salesforce_id(salesforce_id)
            if customer is None:
                raise ErpError(404, "CUSTOMER_NOT_FOUND", f"no customer with salesforce_id {salesforce_id}")
            return Reply(200, customer.as_json())

    def put_by_salesforce_id(req: Request) -> Reply:
        salesforce_id = _check_salesforce_id(req.params["salesforce_id"])
        body = req.json_object()
        if body.get("salesforce_id", salesforce_id) != salesforce_id:
            raise ErpError(400, "INVALID_FIELD", "salesforce_id in the body differs from the one in the path")
        with app.lock:
            result, customer = customers.upsert(salesforce_id, body)
            return Reply(201 if result == "created" else 200, {"result": result, "customer": customer.as_json()})

    def bulk_upsert(req: Request) -> Reply:
        rows = _bulk_rows(req)
        results = []
        with app.lock:
            for index, row in enumerate(rows):
                salesforce_id = row.get("salesforce_id") if isinstance(row, dict) else None
                try:
                    if not isinstance(row, dict):
                        raise ErpError(400, "INVALID_BULK", "every customer must be a JSON object")
                    _check_salesforce_id(salesforce_id)
                    result, customer = customers.upsert(salesforce_id, row)  # type: ignore[arg-type]
                    results.append({"index": index, "salesforce_id": salesforce_id,
                                    "customer_id": customer.customer_id, "result": result,
                                    "updated_at": format_time(customer.updated_at)})
                except ErpError as exc:  # one bad row fails alone; the others are written
                    results.append({"index": index, "salesforce_id": salesforce_id, "customer_id": None,
                                    "result": "error", "error": {"code": exc.code, "message": exc.message}})
        return Reply(200, {"results": results})

    def create_customer(req: Request) -> Reply:
        body = req.json_object()
        with app.lock:
            customer = customers.create(body)
            return Reply(201, {"result": "created", "customer": customer.as_json()})

    def bulk_update(req: Request) -> Reply:
        rows = _bulk_rows(req)
        results = []
        with app.lock:
            for index, row in enumerate(rows):
                customer_id = row.get("customer_id") if isinstance(row, dict) else None
                try:
                    if not isinstance(row, dict):
                        raise ErpError(400, "INVALID_BULK", "every customer must be a JSON object")
                    if not isinstance(customer_id, str) or not CUSTOMER_ID.match(customer_id):
                        raise ErpError(400, "INVALID_CUSTOMER_ID", f"not a customer id: {customer_id!r}")
                    customer = find(customer_id)
                    changed = customers.update(customer, {k: v for k, v in row.items() if k != "customer_id"})
                    results.append({"index": index, "customer_id": customer_id,
                                    "salesforce_id": customer.salesforce_id,
                                    "result": "updated" if changed else "unchanged",
                                    "updated_at": format_time(customer.updated_at)})
                except ErpError as exc:  # one bad row fails alone (and changes nothing); the others are written
                    results.append({"index": index, "customer_id": customer_id, "result": "error",
                                    "error": {"code": exc.code, "message": exc.message}})
        return Reply(200, {"results": results})

    app.router.add("GET", "/customers", list_customers)
    app.router.add("POST", "/customers", create_customer)
    app.router.add("POST", "/customers/bulk-upsert", bulk_upsert)
    app.router.add("POST", "/customers/bulk-update", bulk_update)
    app.router.add("GET", "/customers/by-salesforce-id/{salesforce_id}", get_by_salesforce_id)
    app.router.add("PUT", "/customers/by-salesforce-id/{salesforce_id}", put_by_salesforce_id)
    app.router.add("GET", "/customers/{customer_id}", get_customer)
    app.router.add("PATCH", "/customers/{customer_id}", patch_customer)
    app.router.add("POST", "/customers/{customer_id}/deactivate", deactivate)
