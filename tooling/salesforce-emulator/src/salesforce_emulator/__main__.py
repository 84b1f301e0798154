"""``python -m salesforce_emulator serve``: run the emulator until SIGINT or SIGTERM.

When ready it prints exactly one JSON line on stdout (the start-up contract) and nothing else there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from salesforce_emulator.serving import serve_until_signalled

from . import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salesforce_emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the emulator")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--state-dir", type=Path, default=None,
                       help="keep state (SQLite) and certificates here; in memory when omitted")
    serve.add_argument("--schema", type=Path, action="append", default=[],
                       help="an extra schema file merged over the default (repeatable)")
    serve.add_argument("--token-ttl", type=int, default=7200, help="access token lifetime in seconds")
    serve.add_argument("--daily-api-limit", type=int, default=15000)
    args = parser.parse_args(argv)

    emulator = Emulator(args.state_dir, host=args.host, port=args.port, token_ttl_seconds=args.token_ttl,
                        daily_api_limit=args.daily_api_limit, schema_files=args.schema)
    return serve_until_signalled(emulator, "emulator", errors=(Exception,))


if __name__ == "__main__":
    sys.exit(main())
