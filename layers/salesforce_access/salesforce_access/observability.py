"""The one place where Powertools Logger, Tracer and Metrics are created for the layer and its functions.

Functions import these objects instead of creating their own, so that correlation ids, the service name
and the redacting formatter apply to every log line, including the layer's.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from salesforce_access.redaction import redact, redact_value

if TYPE_CHECKING:
    from aws_lambda_powertools.logging.types import LogRecord

DEFAULT_NAMESPACE = "SalesforceIntegration"


_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON formatter that masks credentials in every field before serialising."""

    def serialize(self, log: LogRecord) -> str:
        return super().serialize(log=redact_value(log))


class RedactingFilter(logging.Filter):
    """Masks credentials in the message and ``extra`` fields of each record, whatever the formatter.

    Needed because Powertools loggers sharing a service name share one stdlib logger, and whichever
    Logger is created first (a function's own, say) keeps its formatter.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg, record.args = redact(record.getMessage()), ()
        else:
            record.msg = redact_value(record.msg)
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRIBUTES:
                setattr(record, key, redact_value(value))
        return True


class WithholdSecretBodies(logging.Filter):
    """botocore logs whole request and response bodies at DEBUG, a Secrets Manager value included.

    Installed on import of this module, so that every function that logs through it is covered, whatever
    secret it reads (Salesforce's, the ERP key, a signing key) and whether or not it uses the layer's config.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG and "SecretString" in record.getMessage():
            record.msg, record.args = "[body withheld by salesforce_access: it holds a secret]", ()
        return True


_withhold = WithholdSecretBodies()
for _name in ("botocore.parsers", "botocore.endpoint"):
    logging.getLogger(_name).addFilter(_withhold)

logger = Logger(logger_formatter=RedactingFormatter())
logging.getLogger(logger.name).addFilter(RedactingFilter())
tracer = Tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_NAMESPACE))

__all__ = ["RedactingFilter", "RedactingFormatter", "WithholdSecretBodies", "logger", "metrics", "tracer"]
