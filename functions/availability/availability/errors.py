"""Errors the client sees: each has an HTTP status and a stable code for the JSON body {"code", "message"}."""

from __future__ import annotations


class AvailabilityError(Exception):
    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


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
