"""Expand a SAM template into the CloudFormation that would be deployed, IAM roles included, offline.

`translate(path)` runs SAM's own translator (samtranslator, pinned in requirements/dev.lock) in the test's
process; the module also works as a script (`python sam_translate.py template.yaml > translated.json`).

Returns {"template": <CloudFormation>, "code_uri": {function logical id: CodeUri}}. CodeUri and ContentUri
become a placeholder S3 URI, as `sam validate` does, so no build is needed. A managed policy named by its
short name would need IAM to resolve: the loader refuses it (our templates name no such policy).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform  # type: ignore[import-untyped]
from samtranslator.yaml_helper import yaml_parse  # type: ignore[import-untyped]

PLACEHOLDER = "s3://placeholder/artifact.zip"


class NoManagedPolicyLookup:
    def load(self) -> dict[str, str]:
        raise RuntimeError("a managed policy is named by its short name; name it by ARN")


@contextmanager
def _region() -> Iterator[None]:
    """samtranslator derives the partition from the region; any region of the aws partition will do."""
    before = os.environ.get("AWS_DEFAULT_REGION")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)


def translate(path: str | Path) -> dict[str, Any]:
    template = yaml_parse(Path(path).read_text())
    global_function = template.get("Globals", {}).get("Function", {})
    global_code_uri = global_function.get("CodeUri")
    if isinstance(global_code_uri, str):
        global_function["CodeUri"] = PLACEHOLDER
    code_uri = {}
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function":
            uri = properties.get("CodeUri", global_code_uri)
            if isinstance(uri, str):
                code_uri[logical_id] = uri
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = PLACEHOLDER
    with _region():
        translated = transform(template, {}, NoManagedPolicyLookup())
    return {"template": translated, "code_uri": code_uri}


if __name__ == "__main__":
    json.dump(translate(sys.argv[1]), sys.stdout)
