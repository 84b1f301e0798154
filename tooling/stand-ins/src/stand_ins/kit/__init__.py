"""The small server kit the stand-ins (erp, billing, logistics) share: routing and error envelopes (http.py),
fault injection (faults.py), the request pipeline and request log (app.py), the control routes (control.py),
the threaded loopback server and its life cycle (server.py), and the ``serve`` loop (cli.py).

Hand-written on the standard library: see server.py for why not a WSGI library.
"""

from __future__ import annotations

from .app import CONTROL_PREFIX, DropConnection, RequestLog, StandInApp
from .cli import serve_until_signalled
from .faults import Action, Fault, FaultKind, Faults, InvalidFault
from .http import Envelope, HttpError, Reply, Request, Router
from .server import StandInService, make_server

# No *Server class here: the local stack treats a package exporting one as a stand-in of its own.
__all__ = ["CONTROL_PREFIX", "Action", "DropConnection", "Envelope", "Fault", "FaultKind", "Faults", "HttpError",
           "InvalidFault", "Reply", "Request", "RequestLog", "Router", "StandInApp", "StandInService",
           "make_server", "serve_until_signalled"]
