"""``python -m stand_ins.billing serve``: run the billing stand-in until SIGINT or SIGTERM.

When ready it prints exactly one JSON line on stdout (``{"url": ..., "control_url": ...}``) and nothing else.
"""

from __future__ import annotations

import argparse
import sys

from stand_ins.kit import serve_until_signalled

from . import BillingServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stand_ins.billing", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the billing stand-in")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds added to every billing request")
    args = parser.parse_args(argv)

    server = BillingServer(args.host, args.port, latency_seconds=args.latency)
    return serve_until_signalled(server, "billing stand-in")


if __name__ == "__main__":
    sys.exit(main())
