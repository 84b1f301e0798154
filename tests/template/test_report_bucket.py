"""The customer sync's only S3 grant covers exactly the prefix report.py writes under (and the lifecycle expires)."""

from __future__ import annotations

from typing import Any

from customer_sync.report import PREFIX


def test_the_report_grant_and_lifecycle_follow_the_writers_prefix(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    statements = [s for policy in resources["CustomerSyncWorkerFunction"]["Properties"]["Policies"]
                  if isinstance(policy, dict) for s in policy.get("Statement", [])
                  if any(str(a).startswith("s3:") for a in (s["Action"] if isinstance(s["Action"], list)
                                                             else [s["Action"]]))]
    assert [s["Action"] for s in statements] == ["s3:PutObject"]
    assert statements[0]["Resource"] == {
        "Fn::Sub": f"arn:${{AWS::Partition}}:s3:::${{CustomerSyncReportBucket}}/{PREFIX}/*"}
    rules = resources["CustomerSyncReportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert [r["Prefix"] for r in rules] == [f"{PREFIX}/"]
