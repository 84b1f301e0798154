"""Test control plane, outside ``/services`` so no client mistakes it for Salesforce: fault injection,
the request log, token expiry and the API counter."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import ApiError
from .http import Request, Response, Router

if TYPE_CHECKING:
    from .app import EmulatorApp


def register(router: Router, app: EmulatorApp) -> None:
    from .app import FAULT_KINDS, Fault

    def add_fault(req: Request) -> Response:
        spec = req.json()
        if not isinstance(spec, dict) or spec.get("kind") not in FAULT_KINDS:
            raise ApiError(400, "INVALID_FAULT", f"kind must be one of {sorted(FAULT_KINDS)}")
        count = spec.get("count", 1)
        if not isinstance(count, int) or count < 1:
            raise ApiError(400, "INVALID_FAULT", "count must be a positive integer")
        try:
            path = re.compile(spec["path"]) if spec.get("path") else None
        except re.error as exc:
            raise ApiError(400, "INVALID_FAULT", f"path is not a valid regular expression: {exc}") from None
        delay = float(spec.get("delay_seconds") or 0)
        if spec["kind"] == "delay" and delay <= 0:
            raise ApiError(400, "INVALID_FAULT", "a delay fault needs delay_seconds > 0")
        method = spec.get("method")
        with app._faults_lock:
            app.faults.append(Fault(spec["kind"], count, method.upper() if method else None, path, delay))
        return Response(201, {"kind": spec["kind"], "count": count})

    def clear_faults(req: Request) -> Response:
        with app._faults_lock:
            app.faults.clear()
        return Response(204)

    def list_faults(req: Request) -> Response:
        with app._faults_lock:
            return Response(200, [{"kind": f.kind, "remaining": f.count, "method": f.method,
                                   "path": f.path.pattern if f.path else None} for f in app.faults if f.count > 0])

    def requests(req: Request) -> Response:
        return Response(200, list(app.request_log))

    def clear_requests(req: Request) -> Response:
        app.request_log.clear()
        return Response(204)

    def expire_tokens(req: Request) -> Response:
        return Response(200, {"expired": app.expire_tokens()})

    def usage(req: Request) -> Response:
        used, limit = app.api_usage()
        return Response(200, {"used": used, "limit": limit})

    def set_usage(req: Request) -> Response:
        spec = req.json()
        if not isinstance(spec, dict):
            raise ApiError(400, "INVALID_USAGE", "expected {\"used\": N, \"limit\": M}")
        if isinstance(spec.get("used"), int) and spec["used"] >= 0:
            app.store.set_counter("api_usage", spec["used"])
        if isinstance(spec.get("limit"), int) and spec["limit"] > 0:
            app.settings.daily_api_limit = spec["limit"]
        return usage(req)

    router.add("POST", r"/__emulator/faults", add_fault, api=False)
    router.add("GET", r"/__emulator/faults", list_faults, api=False)
    router.add("DELETE", r"/__emulator/faults", clear_faults, api=False)
    router.add("GET", r"/__emulator/requests", requests, api=False)
    router.add("DELETE", r"/__emulator/requests", clear_requests, api=False)
    router.add("POST", r"/__emulator/tokens/expire", expire_tokens, api=False)
    router.add("GET", r"/__emulator/api-usage", usage, api=False)
    router.add("PUT", r"/__emulator/api-usage", set_usage, api=False)
