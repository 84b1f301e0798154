"""Salesforce authentication and API access for the integration-pattern Lambdas.

Typical handler::

    from salesforce_access import get_access
    from salesforce_access.observability import logger, metrics, tracer

    @logger.inject_lambda_context
    @metrics.log_metrics
    def handler(event, context):
        access = get_access().bind(context)
        access.ensure_allocation(max_share=0.8)
        results = access.collections.upsert("Account", "ERP_Customer_Id__c", rows)

Importing this package is cheap: simple-salesforce, PyJWT and cryptography are imported only when a
client is built or a token requested (cold start). Names are resolved lazily (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from salesforce_access.access import SalesforceAccess, get_access, reset_access_cache
    from salesforce_access.budget import PollPolicy, RetryPolicy, Timeouts
    from salesforce_access.bulk import BulkApi, BulkJob, QueryPage
    from salesforce_access.collections import Collections, RecordError, RecordResult
    from salesforce_access.composite import CompositeError, CompositeResult, Subrequest, SubResponse
    from salesforce_access.config import (
        ClientCredentialsSecret,
        JwtBearerSecret,
        SalesforceSecret,
        UsernamePasswordSecret,
        load_secret,
        parse_secret,
    )
    from salesforce_access.errors import (
        AllocationExhausted,
        AuthenticationError,
        BudgetExhausted,
        BulkJobFailed,
        ConfigurationError,
        ConnectionFailed,
        NotFound,
        OutcomeUnknown,
        RequestLimitExceeded,
        RowLocked,
        SalesforceError,
        ServiceUnavailable,
        SessionExpired,
        TransientError,
        ValidationError,
    )
    from salesforce_access.limits import ApiUsage, parse_limit_info
    from salesforce_access.quoting import quote_like, quote_soql, soql
    from salesforce_access.volume import DEFAULT_BULK_THRESHOLD, choose_api

_EXPORTS = {
    "salesforce_access.access": ("SalesforceAccess", "get_access", "reset_access_cache"),
    "salesforce_access.budget": ("PollPolicy", "RetryPolicy", "Timeouts"),
    "salesforce_access.bulk": ("BulkApi", "BulkJob", "QueryPage"),
    "salesforce_access.collections": ("Collections", "RecordError", "RecordResult"),
    "salesforce_access.composite": ("CompositeError", "CompositeResult", "Subrequest", "SubResponse"),
    "salesforce_access.config": (
        "ClientCredentialsSecret", "JwtBearerSecret", "SalesforceSecret", "UsernamePasswordSecret",
        "load_secret", "parse_secret",
    ),
    "salesforce_access.errors": (
        "AllocationExhausted", "AuthenticationError", "BudgetExhausted", "BulkJobFailed", "ConfigurationError",
        "ConnectionFailed", "NotFound", "OutcomeUnknown", "RequestLimitExceeded", "RowLocked", "SalesforceError",
        "ServiceUnavailable", "SessionExpired", "TransientError", "ValidationError",
    ),
    "salesforce_access.limits": ("ApiUsage", "parse_limit_info"),
    "salesforce_access.quoting": ("quote_like", "quote_soql", "soql"),
    "salesforce_access.volume": ("DEFAULT_BULK_THRESHOLD", "choose_api"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "DEFAULT_BULK_THRESHOLD",
    "AllocationExhausted",
    "ApiUsage",
    "AuthenticationError",
    "BudgetExhausted",
    "BulkApi",
    "BulkJob",
    "BulkJobFailed",
    "ClientCredentialsSecret",
    "Collections",
    "CompositeError",
    "CompositeResult",
    "ConfigurationError",
    "ConnectionFailed",
    "JwtBearerSecret",
    "NotFound",
    "OutcomeUnknown",
    "PollPolicy",
    "QueryPage",
    "RecordError",
    "RecordResult",
    "RequestLimitExceeded",
    "RetryPolicy",
    "RowLocked",
    "SalesforceAccess",
    "SalesforceError",
    "SalesforceSecret",
    "ServiceUnavailable",
    "SessionExpired",
    "SubResponse",
    "Subrequest",
    "Timeouts",
    "TransientError",
    "UsernamePasswordSecret",
    "ValidationError",
    "choose_api",
    "get_access",
    "load_secret",
    "parse_limit_info",
    "parse_secret",
    "quote_like",
    "quote_soql",
    "reset_access_cache",
    "soql",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'salesforce_access' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
