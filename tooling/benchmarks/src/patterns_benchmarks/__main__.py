"""``python -m patterns_benchmarks [name ...]``: run benchmarks and print their Markdown tables."""

from __future__ import annotations

import argparse
import os
import platform
import sys

from . import cold_start, customer_sync, emulator, fire_and_forget, remote_call_in, request_reply, ui_update

# customer_sync syncs CUSTOMER_SYNC_BENCH_RECORDS each way (default 100,000, about a minute); the five pattern
# suites take about four minutes together with their defaults.
SUITES = {
    "emulator": emulator,
    "cold_start": cold_start,
    "request_reply": request_reply,
    "fire_and_forget": fire_and_forget,
    "customer_sync": customer_sync,
    "remote_call_in": remote_call_in,
    "ui_update": ui_update,
}


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()} on {platform.system()} {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patterns_benchmarks")
    parser.add_argument("suites", nargs="*", help=f"any of {', '.join(SUITES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    print(f"Machine: {machine()}\n")
    for name in args.suites or SUITES:
        module = SUITES[name]
        print(f"## {name}\n")
        print(module.report(module.run()), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
