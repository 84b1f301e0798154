"""What the checkov skips in .checkov.yaml rely on, checked on the template as deployed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def test_every_queue_is_encrypted_at_rest(translated: dict[str, Any]) -> None:
    """CKV_AWS_27 (a KMS key on every queue) is skipped because every queue uses SSE-SQS instead."""
    queues = {name: r.get("Properties", {}) for name, r in translated["template"]["Resources"].items()
              if r["Type"] == "AWS::SQS::Queue"}
    assert len(queues) >= 5
    unencrypted = [name for name, props in queues.items()
                   if props.get("SqsManagedSseEnabled") is not True and not props.get("KmsMasterKeyId")]
    assert unencrypted == []


def test_no_function_holds_a_credential_in_its_environment(translated: dict[str, Any]) -> None:
    """CKV_AWS_173 (a KMS key for environment variables) is skipped because they hold only names and ARNs."""
    suspicious = ("PASSWORD", "TOKEN", "PRIVATE_KEY", "CLIENT_SECRET", "API_KEY")
    for name, resource in translated["template"]["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        variables = resource["Properties"].get("Environment", {}).get("Variables", {})
        for key, value in variables.items():
            if any(word in key for word in suspicious):
                assert key.endswith(("_ARN", "_NAME", "_URL")), (name, key)
            assert not (isinstance(value, str) and value.startswith("-----BEGIN")), (name, key)


def test_every_checkov_suppression_gives_its_reason(translated: dict[str, Any]) -> None:
    """Project-wide skips in .checkov.yaml carry a comment, per-resource skips a `comment`, and every id is real."""
    text = (Path(__file__).resolve().parents[2] / ".checkov.yaml").read_text()
    block = text.split("skip-check:", 1)[1]
    entries = [line.strip() for line in block.splitlines() if line.strip().startswith("- ")]
    assert entries
    for entry in entries:
        match = re.fullmatch(r"- (CKV2?_AWS_\d+)\s+#\s*(?P<reason>.+)", entry)
        assert match, f".checkov.yaml skip without a reason: {entry}"
        assert len(match["reason"]) >= 40, entry
    skips = [(name, skip) for name, resource in translated["template"]["Resources"].items()
             for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip.get("id", "")), (name, skip)
        assert len(skip.get("comment", "")) >= 30, f"{name} skips {skip.get('id')} without a reason"
