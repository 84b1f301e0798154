"""`python -m local sign`: a signed request for the local stack's HMAC-signed routes, ready for curl.

The signature is the edge kit's contract (layers/salesforce_access/edge_kit/signatures.py), imported from the
project's layer rather than copied, so this command and the functions can never disagree. The sample events
in events/ carry signatures made at a fixed time with a demo key, so the stack refuses them (401): this
command re-signs their body now, with the running stack's key (or `--key`).
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYER = Path("layers") / "salesforce_access"  # where edge_kit lives, relative to the project


@dataclass(frozen=True)
class SignedRoute:
    path: str
    sample: str  # the sample event in events/ whose body is signed by default
    key: str  # which local credential signs it


ROUTES = {
    "orders": SignedRoute("/orders", "orders-post.json", "order_signing_key"),
    "orders-async": SignedRoute("/orders/async", "orders-post-async.json", "order_signing_key"),
    "webhook": SignedRoute("/shipments/events", "shipment-webhook-post.json", "logistics_signing_key"),
}


class SignatureUsage(Exception):
    """A usage error: a missing body file or key."""


@dataclass(frozen=True)
class SignedRequest:
    url: str
    body: bytes
    body_file: Path
    headers: dict[str, str]

    def render(self, output: str) -> str:
        if output == "headers":
            return "\n".join(f"{k}: {v}" for k, v in self.headers.items() if k.startswith("X-Signature"))
        if output == "json":
            return json.dumps({"url": self.url, "headers": self.headers, "body": self.body.decode("utf-8"),
                               "body_file": str(self.body_file)})
        parts = ["curl", "-sS", "-X", "POST", self.url]
        for name, value in self.headers.items():
            parts += ["-H", f"{name}: {value}"]
        parts += ["--data-binary", f"@{self.body_file}"]
        return " ".join(shlex.quote(p) for p in parts) + \
            "\n# valid for 300 s (the signature window); the body signed is the file, byte for byte"


def edge_kit_signatures(project: Path) -> Any:
    """The project's own edge_kit.signatures module."""
    layer = str(project / LAYER)
    if layer not in sys.path:
        sys.path.insert(0, layer)
    from edge_kit import signatures

    return signatures


def read_body(path: Path) -> bytes:
    """The raw body of a JSON file, or the `body` of a sample API Gateway event."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SignatureUsage(f"cannot read {path}: {exc.strerror}") from None
    try:
        document = json.loads(raw)
    except ValueError:
        return raw  # not JSON: signed as it is (the route will answer what it thinks of it)
    if isinstance(document, dict) and "httpMethod" in document and isinstance(document.get("body"), str):
        return document["body"].encode("utf-8")
    return raw


def signed_request(route: SignedRoute, project: Path, credentials: dict[str, Any], *, body_file: str | None,
                   key: str | None, api_key: str | None, url: str) -> SignedRequest:
    source = Path(body_file) if body_file else project / "events" / route.sample
    body = read_body(source)
    signing_key = key or credentials.get(route.key)
    if not signing_key:
        raise SignatureUsage(f"no signing key for {route.path}: give --key (the stack reports no {route.key})")
    x_api_key = api_key or (credentials.get("api_key") or {}).get("value")
    headers = {"Content-Type": "application/json"}
    if x_api_key:
        headers["x-api-key"] = x_api_key
    headers.update(edge_kit_signatures(project).signed_headers(signing_key, body))
    out = project / ".local-state" / f"signed-{route.path.strip('/').replace('/', '-')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(body)
    return SignedRequest(f"{url.rstrip('/')}{route.path}", body, out, headers)
