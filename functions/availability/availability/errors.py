"""Errors the client sees: each has an HTTP status and a stable code, answered in the edge kit's envelope
{"error", "message"} (docs/api/availability-openapi.yaml lists the codes)."""

from __future__ import annotations

from edge_kit.http_api import ApiError


class AvailabilityError(ApiError):
    status = 500
    code = "INTERNAL_ERROR"


class SkuNotFound(AvailabilityError):
    status, code = 404, "SKU_NOT_FOUND"


class ErpFailure(AvailabilityError):
    """The ERP could not answer; counts against the circuit breaker and may be served from a stale cache."""


class ErpBadResponse(ErpFailure):
    status, code = 502, "ERP_BAD_RESPONSE"


class ErpUnavailable(ErpFailure):
    status, code = 503, "ERP_UNAVAILABLE"


class CircuitOpen(ErpUnavailable):
    code = "ERP_CIRCUIT_OPEN"


class ErpTimeout(ErpFailure):
    status, code = 504, "ERP_TIMEOUT"
