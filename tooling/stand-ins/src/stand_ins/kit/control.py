"""The control routes every stand-in has, under ``/__control/`` (never faulted, never logged): faults, the
request log and a reset. A stand-in adds its own (latency, blocked accounts, ...) on the same router."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .app import StandInApp
from .http import HttpError, Reply, Request


class FaultStore(Protocol):
    """kit.faults.Faults for faults on incoming requests; the carrier adapts its outgoing faults to it."""

    def add_from(self, spec: dict[str, Any]) -> dict[str, Any]: ...
    def pending(self) -> list[dict[str, Any]]: ...
    def clear(self) -> None: ...


def bare(name: str, items: list[Any]) -> Any:
    """A list answered as it is: ``[...]``."""
    return items


def named(name: str, items: list[Any]) -> Any:
    """A list answered under its own name: ``{"faults": [...]}``, ``{"requests": [...]}``."""
    return {name: items}


def items(name: str, items: list[Any]) -> Any:
    """A list answered as ``{"items": [...]}``."""
    return {"items": items}


def register(app: StandInApp, *, reset: Callable[[], None], faults: FaultStore | None = None,
             lists: Callable[[str, list[Any]], Any] = bare) -> None:
    """POST/GET/DELETE /__control/faults, GET/DELETE /__control/requests, POST /__control/reset.
    ``lists`` shapes the two list answers as the stand-in's contract has them."""
    store = faults if faults is not None else app.faults
    if store is not None:
        def add_fault(req: Request) -> Reply:
            try:
                return Reply(201, store.add_from(req.json_object()))
            except ValueError as exc:  # an adapter's refusal; kit Faults raise InvalidFault, an HttpError
                if isinstance(exc, HttpError):
                    raise
                raise HttpError(400, "invalid_request", str(exc)) from None

        def clear_faults(req: Request) -> Reply:
            store.clear()
            return Reply(204)

        app.router.add("POST", "/__control/faults", add_fault)
        app.router.add("GET", "/__control/faults", lambda req: Reply(200, lists("faults", store.pending())))
        app.router.add("DELETE", "/__control/faults", clear_faults)

    def clear_requests(req: Request) -> Reply:
        app.request_log.clear()
        return Reply(204)

    def do_reset(req: Request) -> Reply:
        reset()
        return Reply(204)

    app.router.add("GET", "/__control/requests", lambda req: Reply(200, lists("requests", app.request_log.entries())))
    app.router.add("DELETE", "/__control/requests", clear_requests)
    app.router.add("POST", "/__control/reset", do_reset)


def number(body: dict[str, Any], name: str, default: float, low: float, high: float | None = None,
           code: str = "invalid_request", name_field: bool = False) -> float:
    """A number field within bounds, or a 400 naming it (latency, intervals, sizes); ``name_field`` adds the
    envelope's ``field`` key."""
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low or (high is not None
                                                                                         and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise HttpError(400, code, f"{name} must be a number {bounds}", **({"field": name} if name_field else {}))
    return float(value)
