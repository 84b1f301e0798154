"""What the checkov skips in .checkov.yaml rely on, checked on the template as deployed."""

from __future__ import annotations

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
