"""The socket side: a threaded HTTP/1.1 server on the standard library, and the background-thread life cycle
(start, stop, context manager, the same port after a restart) every stand-in's Python API offers.

The standard library rather than a WSGI server (werkzeug is in .venv): the faults must hold a request, drop
the TCP connection before or after reading it, and cut keep-alive connections on stop, which WSGI hides.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from .app import DropConnection
from .http import Reply, Request


class Exchange(Protocol):
    """What the server hands each request to: a StandInApp, or anything else answering HTTP (gateway.py)."""

    def handle(self, req: Request, content_length: int = 0) -> Reply: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    sys_version = ""
    exchange: Exchange  # set on the subclass built per server

    def log_message(self, format: str, *args: object) -> None:  # quiet: the request log is the record
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        req = Request(method=self.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                      headers={k.lower(): v for k, v in self.headers.items()},
                      read_body=lambda: self.rfile.read(length) if length > 0 else b"")
        try:
            reply = self.exchange.handle(req, length)
            if length and "body" not in req.__dict__ and reply.status != 413:
                _ = req.body  # drain an unread body, so the next request on this connection parses
        except DropConnection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.status == 413:
            self.close_connection = True  # the body was never read: the connection cannot be reused
        payload = reply.encoded()
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", reply.media_type())
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            for one in value if isinstance(value, list) else [value]:
                self.send_header(name, str(one))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _serve


class LoopbackHTTPServer(ThreadingHTTPServer):
    """Tracks open connections, so a stopped stand-in stops answering on keep-alive connections too."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        with self._open_lock:
            self._open.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client hanging up is not our error
        if sys.exc_info()[0] in (ConnectionResetError, BrokenPipeError, TimeoutError):
            return
        super().handle_error(request, client_address)


def make_server(exchange: Exchange, host: str, port: int, server_version: str = "StandIn/1.0") -> LoopbackHTTPServer:
    handler = type("StandInHandler", (_Handler,), {"exchange": exchange, "server_version": server_version})
    return LoopbackHTTPServer((host, port), handler)


class StandInService:
    """A stand-in in a background thread; a context manager. State lives as long as the object: after ``stop``
    connections are refused (the system is down), ``start`` serves again on the same port with the same state.

    Subclasses set ``app`` (anything with ``handle``) and extend ``info``, the start-up line of ``serve``."""

    thread_name = "stand-in"
    server_version = "StandIn/1.0"

    def __init__(self, app: Exchange, host: str = "127.0.0.1", port: int = 0):
        self.app = app
        self.host, self.port = host, port
        self._server: LoopbackHTTPServer | None = None

    def start(self) -> Any:
        if self._server is None:
            stopping = getattr(self.app, "stopping", None)
            if stopping is not None:
                stopping.clear()
            self._server = make_server(self.app, self.host, self.port, self.server_version)
            self.port = self._server.server_address[1]  # kept, so a restart comes back on the same port
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                             name=self.thread_name, daemon=True).start()
        return self

    def stop(self) -> None:
        stopping = getattr(self.app, "stopping", None)
        if stopping is not None:
            stopping.set()  # wake held and delayed requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def info(self) -> dict[str, Any]:
        """The start-up contract printed by the stand-in's ``serve`` command."""
        return {"url": self.url, "control_url": f"{self.url}/__control"}
