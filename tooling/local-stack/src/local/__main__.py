"""``python -m local``: the Docker-free local stack (docs/local-stack.md).

    python -m local up [--port 3000]                       # everything, until Ctrl-C
    python -m local invoke FUNCTION -e events/FILE.json     # one invocation, like `sam local invoke`
    python -m local fire SCHEDULE                           # fire a schedule now, wait for and print the outcome
    python -m local seed                                    # seed the running stack (up does it at start-up)
    python -m local sign orders|orders-async|webhook        # a signed request for the running stack (curl)
    python -m local put-events FILE.json                    # PutEvents on the running stack
    python -m local status                                  # the running stack's URLs, routes and schedules
    python -m local demo                                    # all five patterns end to end, verified (make demo)

The project is the folder of --template, or of the nearest template.yaml from the current directory up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

STATE = Path(".local-state") / "stack.json"  # in the project's folder: where `up` says it is running


def _state_file(template: str | None = None) -> Path:
    from local.stack.project import ProjectNotFound, project_root

    try:
        return project_root(template) / STATE
    except ProjectNotFound as exc:
        raise SystemExit(str(exc)) from None


def _parameters(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in values or []:
        if "=" not in item:
            raise SystemExit(f"--parameter-overrides: expected Name=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key] = value
    return out


def _stack(args: argparse.Namespace, **kwargs: Any) -> Any:
    from local.stack import LocalStack
    from local.stack.project import ProjectNotFound
    from local.stack.template import TemplateInvalid

    try:
        return LocalStack(args.template, env_file=args.env_file, parameters=_parameters(args.parameter_overrides),
                          **kwargs)
    except (ProjectNotFound, TemplateInvalid) as exc:
        raise SystemExit(str(exc)) from None


def cmd_up(args: argparse.Namespace) -> int:
    stack = _stack(args, host=args.host, port=args.port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    from local.stack.template import TemplateInvalid

    try:
        stack.start()
    except (OSError, TemplateInvalid) as exc:
        print(f"local stack failed to start: {exc}", file=sys.stderr)
        return 1
    state_file = stack.project_root / STATE
    try:
        from local.seed import local_credentials, seed_stack

        summary = stack.summary()
        if not args.no_seed:
            try:
                summary["seeded"] = seed_stack(stack)
            except Exception as exc:  # the stack still runs; the banner says what is missing
                summary["seeded"] = {"error": f"{type(exc).__name__}: {exc}"}
        summary["local_credentials"] = local_credentials(stack)
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps({"api_url": summary["api_url"], "pid": os.getpid()}))
        if args.json:
            print(json.dumps(summary), flush=True)
        else:
            print(_banner(summary), flush=True)
        stop.wait()
    finally:
        print("\nstopping the local stack ...", file=sys.stderr, flush=True)
        state_file.unlink(missing_ok=True)
        stack.stop()
    return 0


def _banner(s: dict[str, Any]) -> str:
    lines = ["", "Local stack is up (Ctrl-C stops everything)", "",
             f"  API           {s['api_url']}",
             f"  API key       {s['api_key']}   (header x-api-key, for API-key routes)",
             "  IAM routes    need a SigV4 Authorization header (any credentials; not verified locally)",
             f"  AWS (moto)    {s['aws_endpoint']}   (AWS_ENDPOINT_URL; credentials 'testing')",
             f"  Salesforce    {s['salesforce']['instance_url']}   (CA bundle {s['salesforce']['ca_bundle']})"]
    for name, url in s["stand_ins"].items():
        lines.append(f"  {name:<13} {url}")
    lines += ["", "Routes:"] + [f"  {r}" for r in s["routes"]]
    if s["queues"]:
        lines += ["", "Queues polled:"] + [f"  {q} -> {fn}" for fn, qs in s["queues"].items() for q in qs]
    if s["rules"]:
        lines += ["", "EventBridge rules:"] + [f"  {r} -> {fn}" for fn, rs in s["rules"].items() for r in rs]
    if s["schedules"]:
        lines += ["", "Schedules (fire one now with: python -m local fire NAME):"]
        lines += [f"  {name}: {what}" for name, what in s["schedules"].items()]
    if s["problems"]:
        lines += ["", "Not wired locally:"] + [f"  - {p}" for p in s["problems"]]
    seeded = s.get("seeded")
    if seeded:
        lines += ["", "Seeded (python -m local seed does it again):"]
        lines += [f"  could not seed: {seeded['error']}"] if "error" in seeded else \
            [f"  Salesforce: Product2 + standard price book entries for {', '.join(seeded['salesforce_products'])}",
             "  ERP: its catalogue and stock as the stand-in starts (the same SKUs)"]
    if s.get("local_credentials"):
        lines += ["", *_credential_lines(s["local_credentials"])]
    return "\n".join(lines) + "\n"


def _credential_lines(c: dict[str, Any]) -> list[str]:
    sf = c["salesforce"]
    rows = [("x-api-key (API-key routes)", c["api_key"]["value"])]
    if "order_signing_key" in c:
        rows.append(("order signing key (/orders)", c["order_signing_key"]))
    rows += [(f"{name.removesuffix('_signing_key')} signing key (/shipments/events)", value)
             for name, value in c.items() if name.endswith("_signing_key") and name != "order_signing_key"]
    rows += [(f"{name.removesuffix('_api_key')} stand-in API key (X-Api-Key)", value)
             for name, value in c.items() if name.endswith("_api_key")]
    rows += [("Salesforce instance/login URL", sf["instance_url"]),
             ("Salesforce CA bundle", sf["ca_bundle"]),
             ("Salesforce client id", sf["client_id"]),
             ("Salesforce client secret", sf["client_secret"]),
             ("Salesforce admin login", f"{sf['admin']['username']} / {sf['admin']['password']}"),
             ("Salesforce integration login", f"{sf['integration']['username']} / {sf['integration']['password']}"),
             ("Salesforce integration JWT key", sf["integration"]["jwt_private_key_file"])]
    width = max(len(label) for label, _ in rows)
    return ["LOCAL-ONLY credentials (generated at this start, valid only against this local stack):",
            *[f"  {label:<{width}}  {value}" for label, value in rows],
            "Sign a request with them: python -m local sign orders|orders-async|webhook (prints the curl command)"]


def cmd_invoke(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8") if args.event \
        else "{}"
    try:
        event = json.loads(text)
    except ValueError as exc:
        print(f"the event is not valid JSON: {exc}", file=sys.stderr)
        return 2
    from local.stack.template import TemplateInvalid

    stack = _stack(args, start_api=False, start_sources=False)
    try:
        try:
            stack.start()
        except TemplateInvalid as exc:
            print(str(exc), file=sys.stderr)
            return 2
        for problem in stack.problems:
            print(f"[local] note: {problem}", file=sys.stderr)
        try:
            fn = stack.function(args.function)
        except KeyError as exc:
            print(str(exc).strip('"'), file=sys.stderr)
            return 2
        result = stack.invoke(fn.logical_id, event, handler=args.entry_point)
    finally:
        stack.stop()
    print(f"[local] {fn.logical_id}: {'cold' if result.cold_start else 'warm'} start, init {result.init_ms} ms, "
          f"duration {result.duration_ms} ms", file=sys.stderr)
    print(json.dumps(result.to_json()), flush=True)
    return 0 if result.ok else 1


def _control(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = args.url
    if not url:
        state_file = _state_file(args.template)
        if not state_file.exists():
            raise SystemExit("no running local stack found: start one with `python -m local up` (or give --url)")
        url = json.loads(state_file.read_text())["api_url"]
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/__local/{path}", data=data, method=method,  # noqa: S310 - loopback
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310 - our own loopback URL
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except urllib.error.URLError as exc:
        raise SystemExit(f"the local stack at {url} does not answer: {exc.reason}") from None


def cmd_fire(args: argparse.Namespace) -> int:
    """Fire, then wait for what the function started (the customer sync's run) and print it; 1 if it failed."""
    path = f"schedules/{args.schedule}/fire"
    if not args.no_wait:
        path += f"?wait=outcome&timeout={max(args.timeout - 5, 1):g}"
    status, data = _control(args, "POST", path)
    print(json.dumps(data, indent=2))
    return 0 if status == 200 else 1


def cmd_seed(args: argparse.Namespace) -> int:
    status, data = _control(args, "POST", "seed")
    print(json.dumps(data, indent=2))
    return 0 if status == 200 else 1


def cmd_sign(args: argparse.Namespace) -> int:
    from local.signing import ROUTES, SignatureUsage, signed_request

    route = ROUTES[args.route]
    credentials: dict[str, Any] = {}
    if not args.key or not args.api_key:
        status, credentials = _control(args, "GET", "credentials")
        if status != 200:
            print(f"the running stack did not give its keys: {credentials}", file=sys.stderr)
            return 1
    try:
        request = signed_request(route, _state_file(args.template).parent.parent, credentials, body_file=args.body,
                                 key=args.key, api_key=args.api_key, url=args.url or _running_url(args))
    except SignatureUsage as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        print(request.render(args.output), flush=True)
    except BrokenPipeError:  # e.g. `| head -1`: the reader has what it wanted; no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _running_url(args: argparse.Namespace) -> str:
    state_file = _state_file(args.template)
    if state_file.exists():
        return str(json.loads(state_file.read_text())["api_url"])
    return "http://127.0.0.1:3000"


def cmd_put_events(args: argparse.Namespace) -> int:
    entries = json.loads(Path(args.file).read_text(encoding="utf-8"))
    status, data = _control(args, "POST", "events", entries)
    print(json.dumps(data, indent=2))
    return 0 if status == 200 else 1


def cmd_status(args: argparse.Namespace) -> int:
    status, data = _control(args, "GET", "status")
    print(json.dumps(data, indent=2))
    return 0 if status == 200 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from patterns_demo.cli import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def stack_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--template", "-t", help="the SAM template (default: the nearest template.yaml from the "
                                                "current directory up)")
        p.add_argument("--env-file", "-n", help="variables for the functions: dotenv (KEY=VALUE) or the JSON of "
                                                "`sam local invoke --env-vars`")
        p.add_argument("--parameter-overrides", nargs="*", metavar="Name=value", help="template parameters")

    up = sub.add_parser("up", help="run the whole stack until Ctrl-C")
    stack_options(up)
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=3000, help="port of the API (0 picks a free one)")
    up.add_argument("--json", action="store_true", help="print the start-up summary as one JSON line")
    up.set_defaults(handler=cmd_up)

    invoke = sub.add_parser("invoke", help="invoke one function once, like `sam local invoke`")
    stack_options(invoke)
    invoke.add_argument("function", help="logical id (AvailabilityFunction), function name or CodeUri folder")
    invoke.add_argument("--event", "-e", help="event JSON file ('-' reads stdin; default {})")
    invoke.add_argument("--handler", dest="entry_point",
                        help="another entry point in the function's code (module.function)")
    invoke.set_defaults(handler=cmd_invoke)

    up.add_argument("--no-seed", action="store_true", help="start empty: no products in Salesforce")

    from local.signing import ROUTES

    for name, handler, helptext in (("fire", cmd_fire, "fire a schedule of the running stack now, wait for and "
                                                       "print the outcome (exit 1 if the run failed)"),
                                    ("put-events", cmd_put_events, "PutEvents (a JSON list of entries)"),
                                    ("status", cmd_status, "the running stack's summary"),
                                    ("seed", cmd_seed, "seed the running stack (products and price book entries)"),
                                    ("sign", cmd_sign, "sign a request for POST /orders, /orders/async or "
                                                       "/shipments/events with the local key (prints curl)")):
        p = sub.add_parser(name, help=helptext)
        if name == "fire":
            p.add_argument("schedule", help="the schedule's name, as `python -m local up` lists it")
            p.add_argument("--no-wait", action="store_true", help="print the function's answer only, without "
                                                                  "waiting for the run it started")
        if name == "sign":
            p.add_argument("route", choices=sorted(ROUTES), help="which signed route")
            p.add_argument("--body", "-b", help="the body to sign: a JSON file, or a sample API event (its body "
                                                "is signed); default: the route's sample in events/")
            p.add_argument("--key", help="the signing key (default: the running stack's)")
            p.add_argument("--api-key", help="the x-api-key (default: the running stack's)")
            p.add_argument("--output", "-o", choices=("curl", "headers", "json"), default="curl",
                           help="a complete curl command (default), the two signature headers, or JSON")
        if name == "put-events":
            p.add_argument("file", help="JSON: [{Source, DetailType, Detail, EventBusName}, ...]")
        p.add_argument("--url", help="the running stack's API URL (default: the one `up` recorded)")
        p.add_argument("--template", "-t", help="the project's template, to find what `up` recorded")
        p.add_argument("--timeout", type=float, default=900.0)
        p.set_defaults(handler=handler)

    from patterns_demo.cli import add_arguments as demo_arguments

    demo = sub.add_parser("demo", help="run one scenario through all five patterns and verify it (make demo)",
                          description="Starts the local stack, runs one scenario through all five patterns through "
                                      "their real entry points, verifies every effect in the systems, and exits 1 "
                                      "naming what failed (README.md, 'Two commands'; code in tooling/demo/).")
    demo_arguments(demo)
    demo.set_defaults(handler=cmd_demo)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
