"""``python -m stand_ins.erp serve``: run the ERP stand-in until SIGINT or SIGTERM.

When ready it prints exactly one JSON line on stdout, ``{"url": ..., "control_url": ..., "api_key": ...}``,
and nothing else there.
"""

from __future__ import annotations

import argparse
import sys

from stand_ins.kit import serve_until_signalled

from . import ErpServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stand_ins.erp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the ERP stand-in")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--api-key", default=None, help="require this X-Api-Key header on every ERP call")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds added to every ERP call")
    serve.add_argument("--jitter", type=float, default=0.0, help="up to this many seconds more, at random")
    args = parser.parse_args(argv)

    erp = ErpServer(host=args.host, port=args.port, api_key=args.api_key, latency_seconds=args.latency,
                    jitter_seconds=args.jitter)
    return serve_until_signalled(erp, "erp stand-in")


if __name__ == "__main__":
    sys.exit(main())
