"""Smoke test of the cold-start benchmark: it imports real handlers in fresh interpreters with the template's
environment, measures them against the boto3-only baseline and renders its table. No timing assertions."""

from __future__ import annotations

from patterns_benchmarks import cold_start

WEBHOOK = "shipment_webhook.handler.handler"


def test_every_handler_of_the_template_is_measured_with_its_environment():
    entries = {entry["handler"]: entry for entry in cold_start.handlers()}

    assert {"availability.handler.handler", "billing_consumer.handler.handler", "order_intake.api.handler",
            "order_intake.worker.handler", "shipment_status.handler.handler", WEBHOOK} <= set(entries)
    webhook = entries[WEBHOOK]
    assert webhook["environment"]["POWERTOOLS_SERVICE_NAME"] == "shipment-webhook"  # the template's Globals merged
    assert webhook["paths"][0].endswith("functions/shipment_webhook")
    assert webhook["paths"][1].endswith("layers/salesforce_access")


def test_one_handler_against_the_baseline_in_fresh_interpreters():
    results = cold_start.run(runs=1, only=[WEBHOOK])

    by_handler = {h["handler"]: h for h in results["handlers"]}
    assert set(by_handler) == {"bare_handler.handler", WEBHOOK}
    baseline, webhook = by_handler["bare_handler.handler"], by_handler[WEBHOOK]
    assert baseline["ratio"] == 1.0
    assert 0 < results["baseline_ms"] < 30_000
    assert 0 < webhook["median_ms"] < 30_000
    assert webhook["ratio"] == webhook["median_ms"] / results["baseline_ms"]
    assert webhook["modules"] > baseline["modules"]  # the handler really imported its code and Powertools
    assert not webhook["imports_simple_salesforce"]  # it never talks to Salesforce
    assert webhook["heaviest"]
    assert all(ms >= 0 for _, ms in webhook["heaviest"])
    text = cold_start.report(results)
    assert f"`{WEBHOOK}` (ShipmentWebhookFunction)" in text
    assert text.count("\n|") == 4  # header, rule, two rows


def test_import_time_log_is_summed_by_package():
    log = "\n".join([
        "import time: self [us] | cumulative | imported package",
        "import time:      1000 |       1000 |   botocore.utils",
        "import time:      2000 |       5000 | botocore",
        "import time:       500 |        500 |     pydantic.main",
    ])
    assert cold_start.heaviest_imports(log) == [("botocore", 3.0), ("pydantic", 0.5)]
