"""`sam build` of every function and layer in template.yaml, with the host's Python as the runtime.

The template pins the Lambda runtime (python3.13); a developer laptop or CI may only have another Python
3.11+. SAM's python build workflow insists on an interpreter matching the runtime, so this script writes a
copy of the template with every occurrence of the pinned runtime (Globals Runtime, CompatibleRuntimes,
BuildMethod) replaced by the version of the interpreter running it, and builds that copy:

    .venv/tools/sam-cli/bin/python tests/template/sam_build_check.py [--sam PATH]

Run it with the SAM CLI virtual environment's interpreter (as `make sam-check` does): that interpreter is
put first on PATH so SAM finds it as `python3.X`, with pip. Architectures are kept: for arm64 SAM downloads
aarch64 wheels for the runtime's version, so native dependencies must have such wheels. Output goes to
.aws-sam/build-check/build/, and each layer's python/ folder is checked for the distributions its
requirements.txt pins. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# Everything the check writes, SAM's build.toml and .aws-sam/deps included, stays in one scratch folder, so
# it never mixes with a real `sam build` (.aws-sam/build/, which `sam deploy` would pick up).
CHECK_DIR = ROOT / ".aws-sam" / "build-check"
CHECK_TEMPLATE = CHECK_DIR / "template.retargeted.yaml"
BUILD_DIR = CHECK_DIR / "build"
CACHE_DIR = CHECK_DIR / "cache"

PINNED_RUNTIME = re.compile(r"^\s+Runtime:\s*(python3\.\d+)\s*$", re.MULTILINE)
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def host_runtime() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def retarget(template_text: str, runtime: str) -> tuple[str, str]:
    """Return (pinned runtime, template text with every occurrence of it replaced by `runtime`)."""
    match = PINNED_RUNTIME.search(template_text)
    if not match:
        raise SystemExit("template.yaml: no pinned `Runtime: python3.X` found (Globals.Function.Runtime)")
    pinned = match.group(1)
    return pinned, re.sub(rf"\b{re.escape(pinned)}\b", runtime, template_text)


def layer_dirs(template_text: str) -> list[tuple[str, Path]]:
    """(logical id, ContentUri) of every AWS::Serverless::LayerVersion, read without a YAML parser."""
    layers = []
    for match in re.finditer(
        r"^  ([A-Za-z0-9]+):\n    Type: AWS::Serverless::LayerVersion\n(?P<body>(?:    .*\n|\s*\n)*)",
        template_text,
        re.MULTILINE,
    ):
        uri = re.search(r"^      ContentUri:\s*(\S+)\s*$", match.group("body"), re.MULTILINE)
        if uri:
            layers.append((match.group(1), ROOT / uri.group(1)))
    return layers


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def check_layer(logical_id: str, source: Path) -> list[str]:
    """Missing distributions (from the layer's requirements.txt) in the built layer's python/ folder."""
    built = BUILD_DIR / logical_id / "python"
    if not built.is_dir():
        return [f"{logical_id}: {built} was not built"]
    installed = {normalise(p.name.split("-")[0]) for p in built.glob("*.dist-info")}
    requirements = source / "requirements.txt"
    problems = []
    if requirements.is_file():
        for line in requirements.read_text().splitlines():
            match = REQUIREMENT.match(line.split("#", 1)[0])
            if match and normalise(match.group(1)) not in installed:
                problems.append(f"{logical_id}: {match.group(1)} is pinned but not in the built layer")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sam", default=str(Path(sys.executable).with_name("sam")), help="sam executable")
    args = parser.parse_args(argv)

    text = TEMPLATE.read_text()
    runtime = host_runtime()
    pinned, check_text = retarget(text, runtime)
    CHECK_DIR.mkdir(parents=True, exist_ok=True)
    CHECK_TEMPLATE.write_text(check_text)
    print(f"sam-check: building {TEMPLATE.name} with {runtime} in place of {pinned} -> {BUILD_DIR.relative_to(ROOT)}")

    env = dict(os.environ, SAM_CLI_TELEMETRY="0")
    # SAM looks the runtime's interpreter up on PATH as python3.X: make it this one (it has pip).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    command = [
        os.path.abspath(args.sam), "build",  # relative to where we were started, not to CHECK_DIR
        "--template-file", str(CHECK_TEMPLATE),
        "--base-dir", str(ROOT),  # CodeUri/ContentUri stay relative to the repository root
        "--build-dir", str(BUILD_DIR),
        "--cache-dir", str(CACHE_DIR),
        "--cached",
        "--parallel",
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, cwd=CHECK_DIR, env=env, check=False)
    if result.returncode != 0:
        print(f"sam-check: sam build failed (exit {result.returncode})", file=sys.stderr)
        return result.returncode

    problems = [p for logical_id, source in layer_dirs(text) for p in check_layer(logical_id, source)]
    for problem in problems:
        print(f"sam-check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"sam-check: build ok in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
