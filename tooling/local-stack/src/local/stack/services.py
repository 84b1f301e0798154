"""The outside systems: the Salesforce emulator and the stand-ins of the stand_ins package (ERP, billing,
logistics...).

Stand-ins are discovered, not listed: every subpackage of stand_ins (tooling/stand-ins) that exports a class
named ``*Server`` with start/stop and a ``url`` is started. A stand-in whose constructor takes ``api_key``
gets a generated key, which the stack also stores in a local secret, so a function reads the key from
Secrets Manager as it would in AWS.

wiring.toml (beside this file) says which template parameter or environment variable gets which local value:
``{erp.url}`` is the ERP stand-in's URL, ``{salesforce.secret_arn}`` the ARN of the local Salesforce secret.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .project import project_root

WIRING_FILE = Path(__file__).with_name("wiring.toml")
SALESFORCE_SECRET_NAME = "local/salesforce/integration"  # noqa: S105 - a secret's name, not its value


@dataclass
class StandIn:
    name: str
    server: Any
    values: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.server.url)


def discover_stand_ins() -> dict[str, tuple[type, list[str]]]:
    """{package name: (server class, problems)} for every stand-in package of stand_ins."""
    import pkgutil

    import stand_ins

    found: dict[str, tuple[type, list[str]]] = {}
    for info in sorted(pkgutil.iter_modules(stand_ins.__path__), key=lambda i: i.name):
        name = info.name
        if not info.ispkg or name.startswith("_"):
            continue
        try:
            module = importlib.import_module(f"stand_ins.{name}")
        except Exception:  # noqa: S112 - a package still being written is skipped, reported by the caller
            continue
        for attr in getattr(module, "__all__", dir(module)):
            cls = getattr(module, attr, None)
            if inspect.isclass(cls) and attr.endswith("Server") and all(
                    hasattr(cls, m) for m in ("start", "stop", "url")):
                found[name] = (cls, [])
                break
    return found


def _logistics_signing_key(values: dict[str, str]) -> None:
    values["signing_key"] = secrets.token_urlsafe(32)


def _start_logistics(cls: type, values: dict[str, str], api_url: str, api_key: str) -> Any:
    """The carrier posts signed events to the stack's webhook route, with the API key the route requires."""
    import requests

    from stand_ins.logistics import WebhookSink

    session = requests.Session()
    session.headers["x-api-key"] = api_key
    return cls(WebhookSink(f"{api_url}{values.get('webhook_path', '/shipments/events')}", values["signing_key"],
                           session=session)).start()


# Stand-ins that need the running API (they call it): started after it, with values prepared before the
# template is read (a key that a parameter's secret holds).
LATE_STAND_INS = {"logistics": (_logistics_signing_key, _start_logistics)}


class Services:
    """Starts the emulator and the stand-ins; knows the local value of every wiring placeholder."""

    def __init__(self, salesforce_state_dir: Path | None = None, only: set[str] | None = None,
                 schema_files: list[Path] | None = None):
        self.salesforce_state_dir = salesforce_state_dir
        self.schema_files = schema_files if schema_files is not None else salesforce_schema_files()
        self.only = only
        self.emulator: Any = None
        self.stand_ins: dict[str, StandIn] = {}
        self.values: dict[str, dict[str, str]] = {}
        self.problems: list[str] = []

    def start(self) -> Services:
        from salesforce_emulator import Emulator
        from salesforce_emulator.ids import ORG_ID

        self.emulator = Emulator(self.salesforce_state_dir, schema_files=list(self.schema_files)).start()
        info = self.emulator.info
        self.values["salesforce"] = {
            "instance_url": info["instance_url"], "login_url": info["login_url"], "ca_bundle": info["ca_bundle"],
            "org_id": ORG_ID, "username": info["username"], "api_version": info["api_version"],
            "control_url": info["control_url"],
        }
        self._late: dict[str, type] = {}
        for name, (cls, _) in discover_stand_ins().items():
            if self.only is not None and name not in self.only:
                continue
            if name in LATE_STAND_INS:
                self._late[name] = cls
                self.values[name] = {}
                LATE_STAND_INS[name][0](self.values[name])
                continue
            kwargs: dict[str, Any] = {}
            key = None
            if "api_key" in inspect.signature(cls.__init__).parameters:
                key = secrets.token_urlsafe(24)
                kwargs["api_key"] = key
            try:
                server = cls(**kwargs).start()
            except Exception as exc:
                self.problems.append(f"stand-in local.{name} did not start: {exc}")
                continue
            stand_in = StandIn(name, server, {"url": server.url})
            if key:
                stand_in.values["api_key"] = key
            info = getattr(server, "info", {}) or {}
            stand_in.values.update({k: str(v) for k, v in info.items() if isinstance(v, (str, int)) and v})
            self.stand_ins[name] = stand_in
            self.values[name] = stand_in.values
        return self

    def start_late(self, api_url: str, api_key: str) -> None:
        """Start the stand-ins that call the stack's API."""
        for name, cls in self._late.items():
            try:
                server = LATE_STAND_INS[name][1](cls, self.values[name], api_url, api_key)
            except Exception as exc:
                self.problems.append(f"stand-in local.{name} did not start: {exc}")
                continue
            stand_in = StandIn(name, server, self.values[name])
            stand_in.values["url"] = server.url
            self.stand_ins[name] = stand_in

    def salesforce_secret(self) -> str:
        """The layer's secret for the emulator: JWT bearer, as tests/conftest.py stores it."""
        info = self.emulator.info
        return json.dumps({"flow": "jwt_bearer", "client_id": info["client_id"], "username": info["username"],
                           "private_key": Path(info["private_key_file"]).read_text(), "login_url": info["login_url"],
                           "api_version": info["api_version"]})

    def stop(self) -> None:
        for stand_in in self.stand_ins.values():
            try:
                stand_in.server.stop()
            except Exception as exc:  # keep stopping the others
                self.problems.append(f"stand-in {stand_in.name} did not stop cleanly: {exc}")
        self.stand_ins.clear()
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None

    def expand(self, text: str) -> str:
        """'{erp.url}/x' -> 'http://127.0.0.1:PORT/x'; KeyError naming the placeholder if it has no value."""

        def replace(m: re.Match[str]) -> str:
            service, key = m.group(1), m.group(2)
            try:
                return self.values[service][key]
            except KeyError:
                raise KeyError(f"{{{service}.{key}}}") from None

        return re.sub(r"\{([a-z0-9_]+)\.([a-z0-9_]+)\}", replace, text)


def salesforce_schema_files(path: Path = WIRING_FILE, root: Path | None = None) -> list[Path]:
    """The emulator's schema extensions named by wiring.toml's [salesforce] schema_files globs, relative to the
    project's folder (`root`, default: the nearest folder with a template.yaml, see project.py)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    globs = (data.get("salesforce") or {}).get("schema_files") or []
    if not globs:
        return []
    base = root if root is not None else project_root()
    return sorted({p for pattern in globs for p in base.glob(pattern) if p.is_file()})


def load_wiring(path: Path = WIRING_FILE, extra: Path | None = None) -> dict[str, dict[str, str]]:
    """{"parameters": {...}, "environment": {...}} from wiring.toml (and an extra file, which wins)."""
    result: dict[str, dict[str, str]] = {"parameters": {}, "environment": {}}
    for file in (path, extra):
        if file is None:
            continue
        data = tomllib.loads(Path(file).read_text(encoding="utf-8"))
        for section in result:
            result[section].update({k: str(v) for k, v in (data.get(section) or {}).items()})
    return result
