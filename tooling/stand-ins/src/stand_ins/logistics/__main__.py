"""``python -m stand_ins.logistics``: run the carrier stand-in, or send one journey and exit.

    serve --webhook-url URL | --bus NAME [--endpoint-url URL]   prints one JSON line when ready
    send  --webhook-url URL | --bus NAME  --tracking-number N [--order shuffle --seed 7 --interval 0.5 ...]

The webhook's shared signing key is read from the LOGISTICS_SIGNING_KEY environment variable, never from
the command line (which other users of the machine can read).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from typing import Any

from stand_ins.kit import serve_until_signalled

from . import ORDERS, BusSink, LogisticsServer, WebhookSink, arrange, journey
from .carrier import Carrier


def _sink(args: argparse.Namespace) -> Any:
    if args.webhook_url:
        key = os.environ.get("LOGISTICS_SIGNING_KEY", "")
        if not key:
            raise SystemExit("set LOGISTICS_SIGNING_KEY to the webhook's shared signing key")
        return WebhookSink(args.webhook_url, key)
    import boto3

    return BusSink(boto3.client("events", endpoint_url=args.endpoint_url), args.bus, source=args.source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stand_ins.logistics", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "send"):
        cmd = sub.add_parser(name)
        target = cmd.add_mutually_exclusive_group(required=True)
        target.add_argument("--webhook-url", help="POST events here, signed (LOGISTICS_SIGNING_KEY)")
        target.add_argument("--bus", help="PutEvents on this EventBridge bus instead")
        cmd.add_argument("--endpoint-url", help="EventBridge endpoint (a moto server, LocalStack)")
        cmd.add_argument("--source", default="logistics.carrier", help="event source for --bus")
        cmd.add_argument("--interval", type=float, default=0.0, help="seconds between two sends")
        cmd.add_argument("--batch-size", type=int, default=1, help="events per request")
    serve = sub.choices["serve"]
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    send = sub.choices["send"]
    send.add_argument("--tracking-number", required=True)
    send.add_argument("--order", choices=ORDERS, default="in-order")
    send.add_argument("--seed", type=int)
    send.add_argument("--duplicates", type=int, default=0)
    send.add_argument("--step-minutes", type=float, default=180)
    send.add_argument("--order-number")
    args = parser.parse_args(argv)

    sink = _sink(args)
    if args.command == "send":
        events = arrange(journey(args.tracking_number, step=timedelta(minutes=args.step_minutes),
                                 order_number=args.order_number), args.order, seed=args.seed,
                         duplicates=args.duplicates)
        deliveries = Carrier(sink, interval=args.interval, batch_size=args.batch_size).ship(events)
        for delivery in deliveries:
            print(json.dumps(delivery.to_dict()), flush=True)
        return 0 if all(d.ok for d in deliveries) else 1

    server = LogisticsServer(sink, args.host, args.port, interval=args.interval, batch_size=args.batch_size)
    return serve_until_signalled(server, "logistics stand-in")


if __name__ == "__main__":
    sys.exit(main())
