"""A local Salesforce org over real HTTPS, for tests, the demo stack and benchmarks.

    with Emulator() as emu:
        sf = Salesforce(instance_url=emu.info["instance_url"], session_id=token, session=session)

``python -m salesforce_emulator serve`` (or the ``salesforce-emulator`` script) runs the same thing as a process;
the package's README.md holds the start-up contract. ``EventSubscriber`` reads its platform events.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from .app import DEFAULT_API_VERSION, FAULT_KINDS, EmulatorApp, Fault, Settings, make_server
from .subscriber import EventSubscriber, StreamingError

__all__ = ["DEFAULT_API_VERSION", "Emulator", "EventSubscriber", "StreamingError"]


class Emulator:
    """Starts the emulator in a background thread; a context manager for tests."""

    def __init__(self, state_dir: Path | str | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 token_ttl_seconds: int = 7200, daily_api_limit: int = 15000,
                 schema_files: list[Path | str] | None = None, bulk_batch_delay_seconds: float = 0.0):
        self.settings = Settings(
            state_dir=Path(state_dir) if state_dir is not None else None, host=host, port=port,
            token_ttl_seconds=token_ttl_seconds, daily_api_limit=daily_api_limit,
            schema_files=[Path(p) for p in schema_files or []], bulk_batch_delay_seconds=bulk_batch_delay_seconds,
        )
        self.app: EmulatorApp | None = None
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        self.app = EmulatorApp(self.settings)
        self._server = make_server(self.app)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="salesforce-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.app is not None:
            # requests already accepted (a delayed answer, say) finish before the store closes
            self.app.wait_idle(timeout=5.0)
            stop_workers = getattr(self.app, "stop_workers", None)
            if stop_workers:
                stop_workers()
            self.app.store.close()
            self.app = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def _app(self) -> EmulatorApp:
        if self.app is None:
            raise RuntimeError("the emulator is not running")
        return self.app

    @property
    def info(self) -> dict:
        """The start-up contract: everything a client needs to connect."""
        app = self._app
        cfg = app.config
        return {
            "instance_url": app.base_url,
            "login_url": app.base_url,
            "control_url": f"{app.base_url}/__emulator",
            "ca_bundle": str(app.credentials.ca_bundle),
            "client_id": cfg["client_id"],
            "client_secret": cfg["client_secret"],
            "username": cfg["username"],
            "password": cfg["password"],
            "admin_username": cfg["admin_username"],
            "admin_password": cfg["admin_password"],
            "private_key_file": str(app.credentials.jwt_private_key),
            "certificate_file": str(app.credentials.jwt_certificate),
            "api_version": DEFAULT_API_VERSION,
            "state_dir": str(self.settings.state_dir) if self.settings.state_dir else None,
        }

    # -- test controls (the same operations as the /__emulator HTTP endpoints) ------------------

    def inject(self, kind: str, count: int = 1, method: str | None = None, path: str | None = None,
               delay_seconds: float | None = None) -> None:
        """Make the next ``count`` API calls matching method and path (a regex) fail with ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}")
        if kind == "delay" and not delay_seconds:
            raise ValueError("a delay fault needs delay_seconds")
        fault = Fault(kind, count, method.upper() if method else None, re.compile(path) if path else None,
                      float(delay_seconds or 0))
        with self._app._faults_lock:
            self._app.faults.append(fault)

    def clear_faults(self) -> None:
        with self._app._faults_lock:
            self._app.faults.clear()

    def expire_tokens(self) -> int:
        return self._app.expire_tokens()

    def requests(self) -> list[dict]:
        return list(self._app.request_log)

    def clear_requests(self) -> None:
        self._app.request_log.clear()

    def api_usage(self) -> tuple[int, int]:
        return self._app.api_usage()

    def set_api_usage(self, used: int, limit: int | None = None) -> None:
        self._app.store.set_counter("api_usage", used)
        if limit is not None:
            self._app.settings.daily_api_limit = limit
