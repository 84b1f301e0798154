"""UI Update (pattern 5): time from a logistics event to a subscribed page receiving the platform event.

The chain, nothing stubbed: the carrier stand-in's webhook sink signs and POSTs one status change -> the real
webhook handler behind the loopback API Gateway (``stand_ins.logistics.LocalApiGateway``) -> PutEvents on the
logistics bus (moto) -> the rule's target -> the publisher handler, invoked with the event the rule delivered
-> the Salesforce emulator (child process) -> a CometD subscriber (``salesforce_emulator.subscriber``, what
``lightning/empApi`` speaks) long-polling in a thread, which stamps the moment each event arrives.

The baseline, interleaved: the same platform event published straight to the emulator by an administrator's
REST call, timed to the same subscriber: what the emulator and CometD alone take. p50 / p99 of both, and where
the chain's time goes. Not included: EventBridge's own delivery delay and Lambda's asynchronous invocation in
AWS (moto hands the event to the rule's target as PutEvents returns; this process invokes the publisher).

    python -m patterns_benchmarks.ui_update [--events 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import boto3

from patterns_benchmarks.harness import (
    Context,
    MotoClock,
    Org,
    create_state_table,
    emulator,
    environment,
    fresh_aws,
    import_paths,
    layer_secret,
    p50_p99,
    quiet,
    table,
    template_environment,
)

SIGNING_KEY = "benchmark-carrier-key-4c2e9a71"
CHANNEL = "/event/Shipment_Status__e"
STATUS = "Picked Up"
WAIT_SECONDS = 10.0


class Page:
    """A Lightning page subscribed to the channel: a thread that long-polls and stamps each arrival."""

    def __init__(self, info: dict[str, Any], token: str):
        from salesforce_emulator.subscriber import EventSubscriber

        self.subscriber = EventSubscriber(info["instance_url"], token, info["ca_bundle"], CHANNEL, replay_id=-1,
                                          api_version=info["api_version"])
        self.subscriber.subscribe()
        self.arrivals: dict[str, float] = {}
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="benchmark-page", daemon=True)

    def __enter__(self) -> Page:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_SECONDS)
        self.subscriber.close()

    def _listen(self) -> None:
        while not self._stop.is_set():
            for message in self.subscriber.poll(timeout=1.0):
                now = time.perf_counter()
                with self._arrived:
                    self.arrivals.setdefault(message["data"]["payload"]["Tracking_Number__c"], now)
                    self._arrived.notify_all()

    def wait(self, tracking_number: str) -> float:
        with self._arrived:
            if not self._arrived.wait_for(lambda: tracking_number in self.arrivals, timeout=WAIT_SECONDS):
                raise TimeoutError(f"the page never received the event for {tracking_number}")
            return self.arrivals[tracking_number]


def run(events: int = 200) -> dict[str, Any]:
    import_paths("shipment_webhook", "shipment_status")
    with emulator() as sf, fresh_aws():
        org = Org(sf)
        bus_name = template_environment("ShipmentWebhookFunction")["LOGISTICS_BUS_NAME"]
        tap_url = _bus(bus_name)
        secret_arn = boto3.client("secretsmanager").create_secret(Name="logistics/signing",
                                                                  SecretString=SIGNING_KEY)["ARN"]
        create_state_table()
        env = {**template_environment("ShipmentWebhookFunction"), **template_environment("ShipmentStatusFunction"),
               "LOGISTICS_SIGNING_SECRET_ARN": secret_arn, "STATE_TABLE_NAME": "state", **layer_secret(sf)}
        with environment(env), quiet():
            from shipment_status import handler as publisher
            from shipment_webhook import handler as webhook

            from stand_ins.logistics import LocalApiGateway, WebhookSink

            webhook.reset()
            publisher.reset()
            try:
                with LocalApiGateway(webhook.handler) as gateway, Page(sf, org.token) as page:
                    sink = WebhookSink(f"{gateway.url}/shipments/events", SIGNING_KEY)
                    chain = Chain(sink, boto3.client("sqs"), tap_url, publisher, page)
                    for n in range(3):  # warm-up: token, secrets, clients, connections
                        chain.through(f"1ZWARM{n:010d}")
                        _direct(org, page, f"1ZWARMD{n:09d}")
                    rounds = [(chain.through(f"1ZBENCH{n:09d}"), _direct(org, page, f"1ZBASE{n:010d}"))
                              for n in range(events)]
            finally:
                webhook.reset()
                publisher.reset()
    return _figures(events, rounds)


def _bus(bus_name: str) -> str:
    """The logistics bus, and a queue behind the publisher's rule so this process can invoke the publisher
    with exactly the event EventBridge would hand to Lambda."""
    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name=bus_name)
    tap_url = sqs.create_queue(QueueName="publisher-tap")["QueueUrl"]
    tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="shipment-status", EventBusName=bus_name,
                    EventPattern=json.dumps({"detail-type": ["ShipmentStatusChanged"]}))
    events.put_targets(Rule="shipment-status", EventBusName=bus_name, Targets=[{"Id": "tap", "Arn": tap_arn}])
    return tap_url


class Chain:
    def __init__(self, sink: Any, sqs: Any, tap_url: str, publisher: Any, page: Page):
        self.sink, self.sqs, self.tap_url, self.publisher, self.page = sink, sqs, tap_url, publisher, page

    def through(self, tracking_number: str) -> dict[str, float]:
        """One status change through the whole chain; milliseconds per stage."""
        from stand_ins.logistics import journey

        event = journey(tracking_number, statuses=[STATUS])[0]
        with MotoClock().running() as webhook_moto:
            started = time.perf_counter()
            delivery = self.sink.deliver([event])
            answered = time.perf_counter()
        if delivery.status != 202:
            raise RuntimeError(f"the webhook answered {delivery.status}: {delivery.answer}")
        messages = self.sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=1).get("Messages", [])
        if not messages:
            raise RuntimeError("the rule delivered nothing to the publisher")
        self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=messages[0]["ReceiptHandle"])
        routed = time.perf_counter()
        with MotoClock().running() as publisher_moto:
            summary = self.publisher.handler(json.loads(messages[0]["Body"]), Context("shipment-status", 30))
            published = time.perf_counter()
        if summary["shipments"][0]["result"] != "published":
            raise RuntimeError(f"the publisher did not publish: {summary}")
        arrived = self.page.wait(tracking_number)
        return {"total": (arrived - started) * 1000, "webhook": (answered - started) * 1000,
                "webhook_without_moto": (answered - started) * 1000 - webhook_moto.ms(),
                "bus": (routed - answered) * 1000, "to_page": (arrived - routed) * 1000,
                "publisher": (published - routed) * 1000,
                "publisher_without_moto": (published - routed) * 1000 - publisher_moto.ms()}


def _direct(org: Org, page: Page, tracking_number: str) -> float:
    """The baseline: the same platform event published by a REST call, to the same page (milliseconds)."""
    started = time.perf_counter()
    org.call("POST", "sobjects/Shipment_Status__e", json={"Tracking_Number__c": tracking_number, "Status__c": STATUS,
                                                          "Status_Time__c": "2025-03-02T08:00:00.000+0000",
                                                          "Carrier__c": "Local Parcel"})
    return (page.wait(tracking_number) - started) * 1000


def _figures(events: int, rounds: list[tuple[dict[str, float], float]]) -> dict[str, Any]:
    results: dict[str, Any] = {"events": events}
    results["direct_p50_ms"], results["direct_p99_ms"] = p50_p99([direct for _, direct in rounds])
    for stage in ("total", "webhook", "webhook_without_moto", "bus", "to_page", "publisher", "publisher_without_moto"):
        results[f"{stage}_p50_ms"], results[f"{stage}_p99_ms"] = p50_p99([chain[stage] for chain, _ in rounds])
    return results


def report(results: dict[str, Any]) -> str:
    r = results
    ratio = r["total_p50_ms"] / r["direct_p50_ms"]
    rows = [
        ("platform event published by a REST call, to the subscriber (baseline)", f"{r['direct_p50_ms']:.1f} ms",
         f"{r['direct_p99_ms']:.1f} ms", "1.00x", ""),
        ("logistics event to the subscriber, through the whole chain", f"{r['total_p50_ms']:.1f} ms",
         f"{r['total_p99_ms']:.1f} ms", f"{ratio:.2f}x", ""),
        ("- carrier POST to the webhook's 202 (signature, validation, PutEvents)", f"{r['webhook_p50_ms']:.1f} ms",
         f"{r['webhook_p99_ms']:.1f} ms", "", f"{r['webhook_without_moto_p50_ms']:.1f} ms"),
        ("- bus and rule to the publisher's event (moto)", f"{r['bus_p50_ms']:.1f} ms", f"{r['bus_p99_ms']:.1f} ms",
         "", ""),
        ("- publisher invoked to the page receiving the event", f"{r['to_page_p50_ms']:.1f} ms",
         f"{r['to_page_p99_ms']:.1f} ms", "", ""),
        ("(the publisher's whole invocation: lease, query, upsert, publish, release; 3 API calls)",
         f"{r['publisher_p50_ms']:.1f} ms", f"{r['publisher_p99_ms']:.1f} ms", "",
         f"{r['publisher_without_moto_p50_ms']:.1f} ms"),
    ]
    return (f"{r['events']:,} status changes, each on a new shipment, interleaved with the baseline.\n\n"
            + table(rows, ("measurement", "p50", "p99", "x baseline p50", "p50 without moto's own time")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patterns_benchmarks.ui_update")
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args(argv)
    print(report(run(args.events)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
