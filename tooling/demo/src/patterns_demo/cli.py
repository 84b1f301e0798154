"""``python -m local demo``: options, the stack's life cycle, the summary and the exit code.

Exit codes: 0 when every check passed, 1 when a pattern did not do what it claims (the summary names it), 2
for a usage error, 130 when interrupted. Whatever happens, the stack is stopped, the function processes are
gone and the demo's temporary directory is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

# The sync's window normally ends 60 s behind the clock (transactions still committing); the demo's changes
# are seconds old, so its sync functions see them at once. Nothing else differs from template.yaml.
DEMO_ENVIRONMENT = {fn: {"SYNC_WATERMARK_LAG_SECONDS": "0"}
                    for fn in ("CustomerSyncStartFunction", "CustomerSyncWorkerFunction")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", "-t", help="the project's SAM template (default: the nearest template.yaml "
                                                 "from the current directory up)")
    parser.add_argument("--only", metavar="N[,N...]", help="run only these patterns (1-5), e.g. --only 2 or 4,5")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also print every line the functions log (on stderr)")
    parser.add_argument("--report", metavar="FILE", help="write every check and its facts as JSON to FILE")
    parser.add_argument("--no-color", action="store_true", help="no colour even on a terminal (or set NO_COLOR)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def parse_only(text: str | None) -> list[int]:
    if not text:
        return [1, 2, 3, 4, 5]
    try:
        numbers = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        numbers = []
    if not numbers or any(n < 1 or n > 5 for n in numbers):
        raise ValueError(f"--only takes pattern numbers 1 to 5 separated by commas, not {text!r}")
    return numbers


def run(args: argparse.Namespace, out: TextIO | None = None,
        on_ready: Callable[[Any], None] | None = None) -> int:
    """The demo. `on_ready(stack)` runs once the stack is seeded (tests use it to break something)."""
    from .story import Story

    out = out or sys.stdout
    try:
        patterns = parse_only(args.only)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    story = Story(out, colour=False if args.no_color else None)
    workdir = Path(tempfile.mkdtemp(prefix="salesforce-patterns-demo-"))
    saved_tmp = tempfile.tempdir, os.environ.get("TMPDIR")
    # Everything the demo and its functions write to a temporary place lands in workdir, removed at the end.
    tempfile.tempdir = str(workdir)
    os.environ["TMPDIR"] = str(workdir)
    children_before = _children()
    restore_signal = _sigterm_as_interrupt()
    stack = None
    try:
        stack, demo = _start(story, workdir, args)
        from .scenario import run_pattern, seed

        seed(demo)
        if on_ready is not None:
            on_ready(stack)
        timings = {n: run_pattern(demo, n) for n in patterns}
        return _summary(story, demo, timings, args.report)
    except KeyboardInterrupt:
        story.print()
        story.print("Interrupted: stopping the local stack and cleaning up.")
        return 130
    finally:
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.stop()
        _stop_children(children_before)
        restore_signal()
        tempfile.tempdir = saved_tmp[0]
        if saved_tmp[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_tmp[1]
        shutil.rmtree(workdir, ignore_errors=True)


def _start(story: Any, workdir: Path, args: argparse.Namespace) -> tuple[Any, Any]:
    from local.stack import LocalStack
    from local.stack.runtime import collecting_sink

    from .scenario import Demo

    story.title("Salesforce integration patterns on AWS Lambda: the demo")
    story.print("Everything runs on this machine: no Docker, no AWS account, no Salesforce org.")
    story.print()
    story.print("Starting the local stack (template.yaml on moto, the Salesforce emulator, the stand-ins) ...")
    env_file = workdir / "demo-env.json"
    env_file.write_text(json.dumps(DEMO_ENVIRONMENT))
    logs: list[tuple[str, str]] = []
    started = time.monotonic()
    stack = LocalStack(getattr(args, "template", None), env_file=env_file,  # tests build args without it
                       log_sink=collecting_sink(logs, echo=args.verbose))
    stack.start()
    summary = stack.summary()
    story.step(f"API Gateway emulation  {summary['api_url']}   {len(summary['routes'])} routes from template.yaml")
    story.step(f"AWS (moto server)      {summary['aws_endpoint']}   queues, tables, buses, secrets, buckets")
    story.step(f"Salesforce emulator    {summary['salesforce']['instance_url']}   (HTTPS, its own CA)")
    for name, url in summary["stand_ins"].items():
        story.step(f"{name + ' stand-in':<22} {url}")
    queues = sum(len(q) for q in summary["queues"].values())
    story.step(f"{len(summary['functions'])} functions, {queues} queues polled, "
               f"{sum(len(r) for r in summary['rules'].values())} EventBridge rule(s), "
               f"{len(summary['schedules'])} schedule(s); ready in {time.monotonic() - started:.1f} s")
    for problem in stack.problems:
        story.step(f"note: {problem}")
    demo = Demo(stack, story, logs)
    demo.login()
    return stack, demo


def _summary(story: Any, demo: Any, timings: dict[int, float], report: str | None) -> int:
    from .scenario import PATTERNS

    story.print()
    story.print("Summary")
    for number, took in timings.items():
        name = PATTERNS[number - 1][0]
        checks = [c for c in story.checks if c.pattern == name]
        failed = [c for c in checks if not c.ok]
        mark = "FAIL" if failed or not checks else "ok  "
        story.step(f"{mark} {number} {name:<32} {len(checks) - len(failed)}/{len(checks)} checks  {took:5.1f} s")
    failures = story.failures
    if report:
        Path(report).write_text(json.dumps({
            "ok": not failures, "seconds": round(story.elapsed(), 1), "patterns": sorted(timings),
            "checks": [c.__dict__ for c in story.checks], "facts": demo.facts}, indent=2, default=str))
    story.print()
    if failures:
        story.print(f"FAILED: {len(failures)} of {len(story.checks)} checks did not hold:")
        for failure in failures:
            story.step(f"{failure.pattern}: {failure.label}" + (f" ({failure.detail})" if failure.detail else ""))
        story.print("Run with --verbose to see every function's log lines.")
        return 1
    which = "All five patterns" if len(timings) == 5 else f"Pattern(s) {', '.join(map(str, timings))}"
    story.print(f"{which} did what they claim: {len(story.checks)} checks passed in {story.elapsed():.0f} s.")
    story.print("Next: `make local` keeps this stack running for you to play with (README.md, 'Local usage').")
    return 0


def _sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM stops the demo like Ctrl-C does, so the clean-up runs (only possible in the main thread)."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: the caller handles signals
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous)


def _children() -> set[int]:
    """This process's child processes (Linux /proc; elsewhere the stack's own stop is all there is)."""
    me, found = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == me:
            found.add(int(stat.parent.name))
    return found


def _stop_children(before: set[int]) -> None:
    """Function processes still busy when the stack stopped (an interrupted invocation) are ended too."""
    leftover = _children() - before
    for pid in leftover:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while leftover and time.monotonic() < deadline:
        for pid in list(leftover):
            with contextlib.suppress(ChildProcessError, OSError):
                if os.waitpid(pid, os.WNOHANG) == (0, 0):
                    continue
            leftover.discard(pid)
        time.sleep(0.05)
    for pid in leftover:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
