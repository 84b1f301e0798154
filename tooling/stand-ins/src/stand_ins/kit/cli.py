"""The start-up contract every stand-in's ``serve`` command follows.

Start, print exactly one JSON line (the server's ``info``) on stdout, serve until SIGINT or SIGTERM, stop
cleanly; a server that cannot start prints a one-line reason on stderr, never a traceback, and exits 1.
(salesforce_emulator has the same loop: the two packages install independently of each other.)
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any, Protocol


class LocalServer(Protocol):
    def start(self) -> Any: ...
    def stop(self) -> None: ...
    @property
    def info(self) -> dict[str, Any]: ...


def serve_until_signalled(server: LocalServer, name: str, errors: tuple[type[BaseException], ...] = (OSError,)) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
    except errors as exc:  # a port in use: the reason, not a traceback
        print(f"{name} failed to start: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(server.info), flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
    return 0
