"""Inventory: stock per SKU and warehouse, read one SKU or many at a time (contract in README.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .clock import utc_now_iso
from .server import ErpError, Reply, Request

if TYPE_CHECKING:
    from .server import ErpApp

SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SKUS_PER_QUERY = 200

WAREHOUSES = {"WH-LON": "London", "WH-FRA": "Frankfurt", "WH-NJ": "New Jersey"}

# Demo catalogue: (sku, description, {warehouse: (on_hand, reserved)}). SKU-1004 is sold out everywhere,
# SKU-1005 is stocked in one warehouse only.
SEED: list[tuple[str, str, dict[str, tuple[int, int]]]] = [
    ("SKU-1001", "Industrial pump, 2 kW", {"WH-LON": (120, 20), "WH-FRA": (40, 0), "WH-NJ": (75, 5)}),
    ("SKU-1002", "Pressure valve, stainless", {"WH-LON": (15, 3), "WH-FRA": (60, 10), "WH-NJ": (0, 0)}),
    ("SKU-1003", "Control unit with display", {"WH-LON": (8, 8), "WH-FRA": (12, 2), "WH-NJ": (30, 0)}),
    ("SKU-1004", "Flow meter DN50", {"WH-LON": (0, 0), "WH-FRA": (3, 3), "WH-NJ": (0, 0)}),
    ("SKU-1005", "Spare seal kit", {"WH-NJ": (500, 40)}),
    ("SKU-1006", "Motor mount bracket", {"WH-LON": (220, 0), "WH-FRA": (180, 30)}),
    ("SKU-1007", "Filter cartridge, 10 pack", {"WH-LON": (64, 4), "WH-FRA": (0, 0), "WH-NJ": (16, 16)}),
    ("SKU-1008", "Heat exchanger plate", {"WH-FRA": (9, 1)}),
    ("SKU-1009", "Sensor cable, 5 m", {"WH-LON": (340, 12), "WH-FRA": (290, 0), "WH-NJ": (410, 25)}),
    ("SKU-1010", "Service contract, 1 year", {"WH-LON": (1000, 0)}),
]


@dataclass
class Stock:
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return max(self.on_hand - self.reserved, 0)


@dataclass
class Item:
    sku: str
    description: str
    unit: str = "EA"
    stock: dict[str, Stock] = field(default_factory=dict)

    def as_json(self, as_of: str) -> dict:
        warehouses = [{"code": code, "name": WAREHOUSES.get(code, code), "on_hand": s.on_hand,
                       "reserved": s.reserved, "available": s.available} for code, s in sorted(self.stock.items())]
        return {"sku": self.sku, "description": self.description, "unit": self.unit,
                "on_hand": sum(w["on_hand"] for w in warehouses), "reserved": sum(w["reserved"] for w in warehouses),
                "available": sum(w["available"] for w in warehouses), "warehouses": warehouses, "as_of": as_of}


class Inventory:
    """In-memory stock; the caller (ErpApp) holds the lock around every change."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.reset()

    def reset(self) -> None:
        self.items = {sku: Item(sku, description, stock={w: Stock(*q) for w, q in stock.items()})
                      for sku, description, stock in SEED}

    def get(self, sku: str) -> Item | None:
        return self.items.get(sku)

    def put(self, sku: str, description: str, stock: dict[str, Stock], unit: str = "EA") -> bool:
        """Create or replace an item; True if it was created."""
        created = sku not in self.items
        self.items[sku] = Item(sku, description, unit, stock)
        return created

    def set_stock(self, sku: str, warehouse: str, on_hand: int, reserved: int = 0) -> None:
        item = self.items.get(sku)
        if item is None:
            item = self.items[sku] = Item(sku, sku)
        item.stock[warehouse] = Stock(on_hand, reserved)


def _check_sku(sku: object) -> str:
    if not isinstance(sku, str) or not SKU.match(sku):
        raise ErpError(400, "INVALID_SKU", f"not a valid SKU: {sku!r}")
    return sku


def _non_negative_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ErpError(400, "INVALID_STOCK", f"{name} must be a non-negative integer")
    return value


def register(app: ErpApp, inventory: Inventory) -> None:
    def get_item(req: Request) -> Reply:
        sku = _check_sku(req.params["sku"])
        with app.lock:
            item = inventory.get(sku)
            if item is None:
                raise ErpError(404, "SKU_NOT_FOUND", f"no item with SKU {sku}")
            return Reply(200, item.as_json(utc_now_iso()))

    def query_stock(req: Request) -> Reply:
        skus = req.json_object().get("skus")
        if not isinstance(skus, list) or not skus:
            raise ErpError(400, "INVALID_QUERY", "skus must be a non-empty list of SKUs")
        if len(skus) > MAX_SKUS_PER_QUERY:
            raise ErpError(400, "TOO_MANY_SKUS", f"at most {MAX_SKUS_PER_QUERY} SKUs per query, got {len(skus)}")
        wanted = list(dict.fromkeys(_check_sku(sku) for sku in skus))  # unique, in the caller's order
        as_of = utc_now_iso()
        with app.lock:
            found = [inventory.items[sku].as_json(as_of) for sku in wanted if sku in inventory.items]
        known = {item["sku"] for item in found}
        return Reply(200, {"as_of": as_of, "items": found, "not_found": [s for s in wanted if s not in known]})

    def put_item(req: Request) -> Reply:
        sku = _check_sku(req.params["sku"])
        body = req.json_object()
        description = body.get("description", sku)
        unit = body.get("unit", "EA")
        if not isinstance(description, str) or not isinstance(unit, str):
            raise ErpError(400, "INVALID_ITEM", "description and unit must be strings")
        rows = body.get("warehouses")
        if not isinstance(rows, list):
            raise ErpError(400, "INVALID_ITEM", "warehouses must be a list of {code, on_hand, reserved}")
        stock: dict[str, Stock] = {}
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("code"), str) or not row["code"]:
                raise ErpError(400, "INVALID_ITEM", "every warehouse needs a code")
            stock[row["code"]] = Stock(_non_negative_int(row.get("on_hand"), "on_hand"),
                                       _non_negative_int(row.get("reserved", 0), "reserved"))
        with app.lock:
            created = inventory.put(sku, description, stock, unit)
            return Reply(201 if created else 200, inventory.items[sku].as_json(utc_now_iso()))

    app.router.add("GET", "/inventory/items/{sku}", get_item)
    app.router.add("PUT", "/inventory/items/{sku}", put_item)
    app.router.add("POST", "/inventory/stock-queries", query_stock)
