"""Cold start: the import and init time of every handler in template.yaml against a bare boto3-only handler.

Each measurement is a fresh interpreter (as a new Lambda execution environment) that puts the function's
CodeUri and the layer on sys.path, gets the function's environment from the template (Globals merged), and
times ``import <module>`` plus looking up the handler: everything Lambda's init phase runs for our code. The
interpreter's own start-up is the same for every handler and is left out. Runs are interleaved across
handlers (round-robin), so a busy moment on the machine does not land on one handler only; the figure is
the median of ``runs``. One more run per handler under ``python -X importtime`` shows which packages the time goes to.

Tracing is Active in the template, so the child sets ``LAMBDA_TASK_ROOT`` like the Lambda runtime does: the
Powertools Tracer is then enabled and imports and patches the X-Ray SDK, as it would in AWS. Bytecode is
cached (one discarded warm-up run per handler): SAM's build compiles the dependencies at pip install time.

    python -m patterns_benchmarks.cold_start [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patterns_benchmarks.harness import FAKE_AWS, PARAMETERS, layer_dir, table

BASELINE = "bare boto3 handler (baseline)"
BARE_HANDLER = '"""The baseline: a handler that imports boto3 and nothing else."""\nimport boto3  # noqa: F401\n\n\n' \
               'def handler(event, context):\n    return {}\n'

# Runs in the fresh interpreter: sys.argv = [-, module, attribute, path...].
PROBE = """
import importlib, json, sys, time
module, attribute, *paths = sys.argv[1:]
sys.path[:0] = paths
started, cpu_started = time.perf_counter(), time.process_time()
handler = getattr(importlib.import_module(module), attribute)
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
assert callable(handler)
print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "modules": len(sys.modules),
                  "simple_salesforce": "simple_salesforce" in sys.modules,
                  "cryptography": "cryptography" in sys.modules,
                  "xray": "aws_xray_sdk" in sys.modules}))
"""


def handlers() -> list[dict[str, Any]]:
    """One entry per distinct handler in the template: name, module, attribute, sys.path, environment."""
    from local.stack.template import read_template

    model = read_template(parameters=PARAMETERS)
    seen: dict[str, dict[str, Any]] = {}
    for logical_id, fn in sorted(model.functions.items()):
        module, attribute = fn.handler.rsplit(".", 1)
        if fn.handler in seen:
            continue
        seen[fn.handler] = {"name": logical_id, "handler": fn.handler, "module": module, "attribute": attribute,
                            "paths": [str(fn.code_uri), *(str(layer) for layer in fn.layers)],
                            "environment": {**model.environment(logical_id),
                                            "AWS_LAMBDA_FUNCTION_NAME": fn.name,
                                            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory),
                                            "LAMBDA_TASK_ROOT": str(fn.code_uri)}}
    return list(seen.values())


def _environment(extra: dict[str, str]) -> dict[str, str]:
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    env = {**keep, **FAKE_AWS, "PYTHONHASHSEED": "0", **extra}
    env.pop("POWERTOOLS_TRACE_DISABLED", None)  # Tracing: Active, as the template says
    return env


def _probe(entry: dict[str, Any], *, importtime: bool = False) -> tuple[dict[str, Any], str]:
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", PROBE,
               entry["module"], entry["attribute"], *entry["paths"]]
    done = subprocess.run(command, cwd=tempfile.gettempdir(), env=_environment(entry["environment"]),  # noqa: S603
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{entry['handler']} failed to import: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def heaviest_imports(importtime_log: str, top: int = 3) -> list[tuple[str, float]]:
    """Where the import time goes: ``-X importtime``'s self time (ms) summed by top-level package."""
    totals: dict[str, float] = defaultdict(float)
    for line in importtime_log.splitlines():
        match = re.match(r"import time:\s+(\d+)\s+\|\s+\d+\s+\|\s*(\S+)", line)
        if match:
            totals[match.group(2).split(".")[0]] += int(match.group(1)) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def run(runs: int = 7, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Median import + init time of each handler (or of those named in `only`, e.g. "availability.handler.handler")
    and of the baseline, over `runs` fresh interpreters each."""
    with tempfile.TemporaryDirectory() as bare_dir:
        Path(bare_dir, "bare_handler.py").write_text(BARE_HANDLER)
        entries = [{"name": BASELINE, "handler": "bare_handler.handler", "module": "bare_handler",
                    "attribute": "handler", "paths": [bare_dir, str(layer_dir())],
                    "environment": {"AWS_LAMBDA_FUNCTION_NAME": "bare", "LAMBDA_TASK_ROOT": bare_dir}},
                   *(h for h in handlers() if only is None or h["handler"] in only)]
        for entry in entries:  # warm-up: compile bytecode once, outside the figures
            _probe(entry)
        samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for _ in range(runs):
            for entry in entries:
                samples[entry["handler"]].append(_probe(entry)[0])
        heaviest = {entry["handler"]: heaviest_imports(_probe(entry, importtime=True)[1]) for entry in entries}
    baseline = samples["bare_handler.handler"]
    baseline_ms = statistics.median(s["seconds"] for s in baseline) * 1000
    baseline_cpu_ms = statistics.median(s["cpu_seconds"] for s in baseline) * 1000
    results: dict[str, Any] = {"runs": runs, "baseline_ms": baseline_ms, "baseline_cpu_ms": baseline_cpu_ms,
                               "handlers": []}
    for entry in entries:
        got = samples[entry["handler"]]
        median_ms = statistics.median(s["seconds"] for s in got) * 1000
        cpu_ms = statistics.median(s["cpu_seconds"] for s in got) * 1000
        results["handlers"].append({
            "name": entry["name"], "handler": entry["handler"], "median_ms": median_ms,
            "min_ms": min(s["seconds"] for s in got) * 1000, "max_ms": max(s["seconds"] for s in got) * 1000,
            "ratio": median_ms / baseline_ms, "cpu_ms": cpu_ms, "cpu_ratio": cpu_ms / baseline_cpu_ms,
            "modules": got[-1]["modules"],
            "imports_simple_salesforce": got[-1]["simple_salesforce"], "imports_cryptography": got[-1]["cryptography"],
            "heaviest": heaviest[entry["handler"]]})
    return results


def report(results: dict[str, Any]) -> str:
    rows = []
    for h in results["handlers"]:
        heavy = ", ".join(f"{name} {ms:.0f}" for name, ms in h["heaviest"])
        rows.append((f"`{h['handler']}`" + ("" if h["handler"] == "bare_handler.handler" else f" ({h['name']})"),
                     f"{h['median_ms']:.0f} ms ({h['min_ms']:.0f}-{h['max_ms']:.0f})", f"{h['ratio']:.1f}x",
                     f"{h['cpu_ms']:.0f} ms", f"{h['cpu_ratio']:.1f}x",
                     f"{h['modules']:,}", "yes" if h["imports_simple_salesforce"] else "no", heavy))
    return (f"Import + init in a fresh interpreter, median of {results['runs']} runs (min-max), against a handler "
            f"that imports only boto3 ({results['baseline_ms']:.0f} ms wall, {results['baseline_cpu_ms']:.0f} ms CPU). "
            "CPU time is the steadier figure on a shared machine.\n\n" +
            table(rows, ("handler", "import + init (wall)", "x baseline", "CPU", "x baseline (CPU)", "modules loaded",
                         "simple-salesforce loaded", "where the time goes (ms, self time by package)")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patterns_benchmarks.cold_start")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    print(report(run(args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
