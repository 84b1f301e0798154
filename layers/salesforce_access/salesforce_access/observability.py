"""The one place where Powertools Logger, Tracer and Metrics are created for the layer and its functions.

Functions import these objects instead of creating their own, so that correlation ids, the service name
and the redacting formatter apply to every log line, including the layer's.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from salesforce_access.redaction import redact_value

DEFAULT_NAMESPACE = "SalesforceIntegration"


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON formatter that masks credentials in every field before serialising."""

    def serialize(self, log: dict[str, Any]) -> str:
        return super().serialize(log=redact_value(log))


logger = Logger(logger_formatter=RedactingFormatter())
tracer = Tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_NAMESPACE))

__all__ = ["RedactingFormatter", "logger", "metrics", "tracer"]
