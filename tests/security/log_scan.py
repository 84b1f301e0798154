"""Suite-wide secret scan: a test fails when a known secret shows up in anything it logged or printed.

Loaded by tests/conftest.py for the whole suite. What counts as a secret is learnt while the suite runs,
from the places the suite's secrets come from, so no test has to declare them:

* every Salesforce emulator started (``EmulatorApp``): its client secret, passwords, and the body lines of
  its private keys (JWT signing key and TLS key); every access token, refresh token and JWT assertion it
  issued or received;
* every secret stored in (moto) Secrets Manager: a plain value whole, a JSON document's values except
  the keys listed in NOT_SECRET (client ids, user names, URLs); PEM keys line by line;
* the ERP stand-in's API key and the logistics carrier's signing key.

What is scanned, per test phase (setup, call, teardown):

* every log record of every propagating logger, with the root logger at DEBUG for the whole session
  (message, exception text and ``extra`` fields), except botocore's wire loggers at DEBUG (WIRE_LOGGERS);
* every line a Powertools formatter produced (Powertools loggers do not propagate), whatever stream it
  went to, so lines a test read back through capsys are scanned too;
* the phase's captured stdout and stderr (prints, subprocesses writing to inherited descriptors).

Values are matched as plain substrings; tokens and JWT assertions (there are hundreds) are found by their
shape and looked up in a set, which keeps the scan to a few milliseconds per test.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

# JSON secret keys whose values identify rather than authenticate (they appear in logs by design).
NOT_SECRET = frozenset({
    "flow", "client_id", "username", "login_url", "instance_url", "api_version", "audience", "domain", "sandbox",
    "url", "base_url", "user", "name", "email", "region", "key_id", "kid", "algorithm", "version",
})
MIN_LENGTH = 8  # shorter stored values ("x", "abc" in bad-input tests) would match ordinary text

# botocore logs whole request and response bodies at DEBUG (the tests' own CreateSecret calls, moto's answers
# to GetSecretValue). They are left out, at DEBUG only: a deployed function runs botocore at the Lambda
# application log level (INFO unless someone sets DEBUG); docs/security.md tells what happens at DEBUG.
WIRE_LOGGERS = ("botocore.endpoint", "botocore.parsers", "botocore.hooks", "botocore.retryhandler")

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9]{15}![A-Za-z0-9_\-.]{20,}")  # Salesforce access tokens: <org id>!<opaque>
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class Secrets:
    """Known secret values, each with a label that says where it came from (never the value)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.tokens: dict[str, str] = {}  # matched by TOKEN_SHAPE or JWT_SHAPE, then looked up
        self.token_lengths: set[int] = set()
        self._lock = threading.Lock()

    def add(self, value: Any, label: str) -> None:
        if not isinstance(value, str) or len(value.strip()) < MIN_LENGTH:
            return
        with self._lock:
            if "-----BEGIN" in value:
                for number, line in enumerate(value.strip().splitlines()):
                    if len(line) >= MIN_LENGTH and not line.startswith("-----"):
                        self.values.setdefault(line, f"{label} (line {number + 1})")
            elif TOKEN_SHAPE.fullmatch(value) or JWT_SHAPE.fullmatch(value):
                self.tokens.setdefault(value, label)
                self.token_lengths.add(len(value))
            else:
                self.values.setdefault(value, label)

    def add_document(self, secret_string: Any, label: str) -> None:
        """A Secrets Manager value: a plain string, or JSON whose values (but NOT_SECRET ones) are secrets."""
        if not isinstance(secret_string, str):
            return
        try:
            document = json.loads(secret_string)
        except ValueError:
            self.add(secret_string, label)
            return
        if isinstance(document, str):
            self.add(document, label)
        for key, value in _leaves(document):
            if key not in NOT_SECRET:
                self.add(value, f"{label} [{key}]")

    def find(self, text: str) -> list[str]:
        """Labels of the secrets in text (empty when there is none)."""
        if not text:
            return []
        found = [label for value, label in list(self.values.items()) if value in text]
        lengths = sorted(self.token_lengths)
        for shape in (TOKEN_SHAPE, JWT_SHAPE):
            for match in shape.finditer(text):
                candidate = match.group()  # may run on into characters that follow the token
                found += [self.tokens[candidate[:n]] for n in lengths if candidate[:n] in self.tokens]
        return sorted(set(found))


def _leaves(document: Any, key: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(document, dict):
        for name, value in document.items():
            yield from _leaves(value, str(name))
    elif isinstance(document, list):
        for value in document:
            yield from _leaves(value, key)
    else:
        yield key, document


class Capture(logging.Handler):
    """Collects what the current test phase logged and what Powertools formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.parts: list[str] = []
        self._exceptions = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.INFO and record.name.startswith(WIRE_LOGGERS):
            return
        try:
            self.parts.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # a malformed record is the logging module's to report, not ours
            self.parts.append(f"{record.name}: {record.msg!r} {record.args!r}")
        if record.exc_info:
            self.parts.append(self._exceptions.formatException(record.exc_info))
        if record.exc_text:
            self.parts.append(record.exc_text)
        extras = [repr(v) for k, v in vars(record).items() if k not in _RECORD_FIELDS]
        if extras:
            self.parts.append(" ".join(extras))

    def take(self) -> str:
        text, self.parts = "\n".join(self.parts), []
        return text


class SecretScan:
    """The pytest plugin: learns secrets, captures each phase's output, fails the phase that leaked one."""

    def __init__(self) -> None:
        self.secrets = Secrets()
        self.capture = Capture()
        self._undo: list[Callable[[], None]] = []
        self._root_level: int | None = None

    # -- learning secrets ------------------------------------------------------------------------

    def _wrap(self, owner: Any, name: str, after: Callable[..., None]) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            try:
                after(result, *args, **kwargs)
            except Exception as exc:  # never break the code under test; say so instead
                logging.getLogger(__name__).warning("secret scan could not learn from %s: %r", name, exc)
            return result

        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, original))

    def _learn_emulator(self, _result: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        config = app.config
        for key in ("client_secret", "password", "admin_password"):
            self.secrets.add(config.get(key), f"Salesforce emulator {key}")
        credentials = app.credentials
        for attribute in ("jwt_private_key", "server_key"):
            path = getattr(credentials, attribute, None)
            if path is not None and Path(path).exists():
                self.secrets.add(Path(path).read_text(), f"Salesforce emulator {attribute}")

    def _learn_secret(self, _result: Any, _backend: Any, *args: Any, **kwargs: Any) -> None:
        name = kwargs.get("name") or kwargs.get("secret_id") or (args[0] if args else "?")
        value = kwargs["secret_string"] if "secret_string" in kwargs else (args[1] if len(args) > 1 else None)
        self.secrets.add_document(value, f"Secrets Manager secret {name!r}")

    def install(self) -> None:
        from moto.secretsmanager.models import SecretsManagerBackend

        from salesforce_emulator.app import EmulatorApp
        from salesforce_emulator.auth import Auth
        from stand_ins.erp.server import ErpApp
        from stand_ins.logistics.carrier import WebhookSink

        secrets = self.secrets
        self._wrap(EmulatorApp, "__init__", self._learn_emulator)
        self._wrap(EmulatorApp, "issue_token", lambda token, *a, **k: secrets.add(token, "Salesforce access token"))
        self._wrap(Auth, "new_refresh_token", lambda token, *a, **k: secrets.add(token, "Salesforce refresh token"))
        self._wrap(Auth, "_jwt", lambda _r, _auth, assertion="", *a, **k: secrets.add(assertion, "JWT assertion"))
        for method in ("create_secret", "put_secret_value", "update_secret"):
            self._wrap(SecretsManagerBackend, method, self._learn_secret)
        self._wrap(ErpApp, "__init__", lambda _r, app, *a, **k: secrets.add(app.api_key, "ERP API key"))
        self._wrap(WebhookSink, "__init__", lambda _r, sink, *a, **k: secrets.add(sink._key, "logistics signing key"))
        self._capture_powertools()
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self.capture)

    def _capture_powertools(self) -> None:
        from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

        original = LambdaPowertoolsFormatter.format
        parts = self.capture

        def format_and_keep(formatter: Any, record: logging.LogRecord) -> str:
            line = original(formatter, record)
            parts.parts.append(line)
            return line

        LambdaPowertoolsFormatter.format = format_and_keep  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(LambdaPowertoolsFormatter, "format", original))

    def uninstall(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.capture)
        if self._root_level is not None:
            root.setLevel(self._root_level)
        while self._undo:
            self._undo.pop()()

    # -- scanning --------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        report = yield
        streams = [content for title, content in report.sections
                   if title.endswith(f" {call.when}") and ("stdout" in title or "stderr" in title)]
        leaks = self.secrets.find("\n".join([self.capture.take(), *streams]))
        if leaks and not item.get_closest_marker("prints_credentials"):
            message = (f"secret scan: the {call.when} phase logged or printed {len(leaks)} known secret(s): "
                       + "; ".join(leaks) + " (tests/security/log_scan.py)")
            report.outcome = "failed"
            report.longrepr = message if report.longrepr is None else f"{report.longrepr}\n\n{message}"
        return report


_PLUGIN_NAME = "secret-log-scan"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "prints_credentials(reason): the test's output shows credentials by design (a local tool's "
        "start-up line); the secret scan does not fail it")
    if config.pluginmanager.has_plugin(_PLUGIN_NAME):
        return
    scan = SecretScan()
    scan.install()
    config.pluginmanager.register(scan, _PLUGIN_NAME)
    config.add_cleanup(scan.uninstall)
