"""Seed a running local stack with what the README's examples need, and say which local keys a user needs.

`python -m local up` seeds at start-up (`--no-seed` skips it) and `python -m local seed` seeds a stack that is
already running; the demo seeds its own prices through `seed_products`. Everything goes through each system's
own API, as a person or an admin tool would: Product2 and standard PricebookEntry records in the Salesforce
emulator (the order API resolves lines by ProductCode and answers 422 for unknown products), nothing in the
ERP (its stand-in starts with the catalogue of stand_ins.erp.inventory.SEED, which the availability examples
read). Seeding twice creates nothing twice.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import requests

HTTP_TIMEOUT = 30  # seconds, for each seeding request
DEFAULT_PRICE = Decimal("100.00")
# List prices for the local catalogue; the sample orders (events/orders-*.json) send their own unit prices.
PRICES = {"SKU-1001": Decimal("1249.00"), "SKU-1002": Decimal("89.50"), "SKU-1003": Decimal("540.00"),
          "SKU-1004": Decimal("315.00"), "SKU-1005": Decimal("12.90")}

__all__ = ["admin_session", "catalogue", "local_credentials", "seed_products", "seed_stack"]


def catalogue() -> dict[str, tuple[str, Decimal]]:
    """{sku: (name, list price)} for every product the ERP stand-in stocks at start-up."""
    from stand_ins.erp.inventory import SEED

    return {sku: (name, PRICES.get(sku, DEFAULT_PRICE)) for sku, name, _ in SEED}


def admin_session(info: dict[str, Any]) -> tuple[requests.Session, str]:
    """A session on the emulator as its admin user (password flow: a person, not the integration user), and
    the REST base URL of the API version it speaks."""
    from salesforce_emulator.connection import https_session

    session = https_session(info)
    response = session.post(f"{info['login_url']}/services/oauth2/token", timeout=HTTP_TIMEOUT, data={
        "grant_type": "password", "client_id": info["client_id"], "client_secret": info["client_secret"],
        "username": info["admin_username"], "password": info["admin_password"]})
    response.raise_for_status()
    session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return session, f"{info['instance_url']}/services/data/v{info['api_version']}"


def _query(session: requests.Session, base: str, soql: str) -> list[dict[str, Any]]:
    response = session.get(f"{base}/query", params={"q": soql}, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return list(response.json()["records"])


def _create(session: requests.Session, base: str, sobject: str, fields: dict[str, Any]) -> str:
    response = session.post(f"{base}/sobjects/{sobject}", json=fields, timeout=HTTP_TIMEOUT)
    if response.status_code != 201:
        raise RuntimeError(f"creating {sobject} answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["id"])


def seed_products(info: dict[str, Any], products: dict[str, tuple[str, Decimal | str | float]]) -> list[str]:
    """Active Product2 records with standard price book entries, for each SKU not yet in the org; returns the
    SKUs created. `info` is the emulator's start-up contract (`stack.services.emulator.info`)."""
    session, base = admin_session(info)
    with session:
        pricebook = _query(session, base, "SELECT Id FROM Pricebook2 WHERE IsStandard = true")[0]["Id"]
        existing = {r["ProductCode"] for r in _query(session, base, "SELECT Id, ProductCode FROM Product2")}
        created = []
        for sku, (name, price) in products.items():
            if sku in existing:
                continue
            product = _create(session, base, "Product2", {"Name": name, "ProductCode": sku, "IsActive": True})
            _create(session, base, "PricebookEntry", {"Pricebook2Id": pricebook, "Product2Id": product,
                                                      "UnitPrice": float(price), "IsActive": True})
            created.append(sku)
    return created


def seed_stack(stack: Any) -> dict[str, Any]:
    """What `up` seeds: the ERP's catalogue as Salesforce products. Returns what was done, for the banner."""
    products = catalogue()
    created = seed_products(stack.services.emulator.info, products)
    return {"salesforce_products": sorted(products), "created": created}


def local_credentials(stack: Any) -> dict[str, Any]:
    """Every key and login a user needs against the local stack. All of them are generated at each start and
    are valid only for this local stack: never real credentials."""
    info = stack.services.emulator.info
    values = stack.services.values
    out: dict[str, Any] = {
        "api_key": {"header": "x-api-key", "value": stack.api_key,
                    "routes": [r.describe() for r in stack.gateway.routes if r.api_key]},
        "salesforce": {
            "instance_url": info["instance_url"], "login_url": info["login_url"], "ca_bundle": info["ca_bundle"],
            "api_version": info["api_version"], "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "admin": {"username": info["admin_username"], "password": info["admin_password"]},
            "integration": {"username": info["username"], "password": info["password"],
                            "jwt_private_key_file": info["private_key_file"]},
        },
    }
    if "OrderSigningSecret" in stack.model.resources:  # another template may have none
        out["order_signing_key"] = json.loads(stack.secret_value("OrderSigningSecret"))["current"]
    for name, stand_in in values.items():
        if name == "salesforce":
            continue
        if "api_key" in stand_in:
            out[f"{name}_api_key"] = stand_in["api_key"]
        if "signing_key" in stand_in:
            out[f"{name}_signing_key"] = stand_in["signing_key"]
    return out
