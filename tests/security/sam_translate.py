"""Expand a SAM template into the CloudFormation that would be deployed, IAM roles included, offline.

Runs under SAM CLI's interpreter (.venv/tools/sam-cli/bin/python: samtranslator is not in the project's venv):

    python sam_translate.py template.yaml > translated.json

Prints {"template": <CloudFormation>, "code_uri": {function logical id: CodeUri}}. CodeUri and ContentUri
become a placeholder S3 URI, as `sam validate` does, so no build is needed. A managed policy named by its
short name would need IAM to resolve: the loader refuses it (our templates name no such policy).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicyLookup:
    def load(self) -> dict[str, str]:
        raise RuntimeError("a managed policy is named by its short name; name it by ARN")


def main(path: str) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(Path(path).read_text())
    placeholder = "s3://placeholder/artifact.zip"
    global_function = template.get("Globals", {}).get("Function", {})
    global_code_uri = global_function.get("CodeUri")
    if isinstance(global_code_uri, str):
        global_function["CodeUri"] = placeholder
    code_uri = {}
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function":
            uri = properties.get("CodeUri", global_code_uri)
            if isinstance(uri, str):
                code_uri[logical_id] = uri
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):
                properties[key] = placeholder
    translated = transform(template, {}, NoManagedPolicyLookup())
    json.dump({"template": translated, "code_uri": code_uri}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
