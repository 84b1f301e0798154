"""Remote Call-In (pattern 4): answer time and Salesforce API calls per order, synchronous and asynchronous.

The Salesforce emulator runs as a child process; DynamoDB (the order ledger), SQS and Secrets Manager are
moto, in this process, with the template's environment for both functions.

- **Synchronous** (``POST /orders``): each round writes one new order (Account upsert, Order, three lines)
  twice, side by side: through the warm API handler (a signed proxy event: signature, validation, ledger,
  one Composite) and, as the baseline, the same Composite alone through the layer (``SalesforceOrders.
  write_order``, no API Gateway, signature or ledger). p50 / p99 of both, and the API calls each handler
  call made, read from the emulator's request log. The same order sent again is timed too (a ledger hit).
- **Asynchronous** (``POST /orders/async`` + the worker): batches of orders accepted (validated and queued),
  then drained by the worker with the template's batch size (100), this process playing the event source
  mapping. Accept time per request, worker throughput and API calls per order. Every order must be in
  Salesforce at the end, or the run fails.

    python -m patterns_benchmarks.remote_call_in [--orders 200] [--async-orders 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from typing import Any

import boto3

from patterns_benchmarks.harness import (
    Context,
    EmulatorControl,
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
    timed_ms,
)

SIGNING_KEY = "benchmark-signing-key-6d1f0b9e"
PRODUCTS = ("BENCH-WIDGET", "BENCH-GADGET", "BENCH-GIZMO")
WORKER_BATCH = 100  # the template's BatchSize for the order queue
WARM_UP = 3


def _order(number: str) -> dict[str, Any]:
    return {
        "order_number": number, "order_date": "2025-03-14",
        "customer": {"erp_customer_id": f"C-{uuid.uuid4().hex[:10]}", "name": "Acme Retail GmbH",
                     "phone": "+49 30 1234"},
        "billing_address": {"street": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "shipping_address": {"street": "Lagerweg 7", "city": "Potsdam", "postal_code": "14467", "country": "DE"},
        "lines": [{"product_code": PRODUCTS[0], "quantity": 2, "unit_price": "19.90"},
                  {"product_code": PRODUCTS[1], "quantity": 1, "unit_price": 249},
                  {"product_code": PRODUCTS[2], "quantity": 5, "unit_price": "3.5"}],
    }


def _event(path: str, body: bytes) -> dict[str, Any]:
    """A signed POST as API Gateway's REST proxy integration delivers it."""
    from edge_kit.signatures import signed_headers

    headers = {"Content-Type": "application/json", **signed_headers(SIGNING_KEY, body)}
    return {"resource": path, "path": path, "httpMethod": "POST", "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()}, "queryStringParameters": None,
            "multiValueQueryStringParameters": None, "pathParameters": None, "stageVariables": None,
            "requestContext": {"resourcePath": path, "httpMethod": "POST", "path": f"/prod{path}", "stage": "prod",
                               "requestId": str(uuid.uuid4()), "accountId": "123456789012", "apiId": "bench",
                               "identity": {"sourceIp": "203.0.113.9", "apiKeyId": "bench"}},
            "body": body.decode(), "isBase64Encoded": False}


def run(orders: int = 200, async_orders: int = 1000, async_batch: int = 100) -> dict[str, Any]:
    import_paths("order_intake")
    results: dict[str, Any] = {"orders": orders, "async_orders": async_orders, "async_batch": async_batch}
    with emulator() as sf, fresh_aws():
        org = Org(sf)
        _products(org)
        create_state_table()
        sqs = boto3.client("sqs")
        dlq_url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
        queue_url = sqs.create_queue(QueueName="orders")["QueueUrl"]
        secret_arn = boto3.client("secretsmanager").create_secret(
            Name="orders/signing", SecretString=json.dumps({"current": SIGNING_KEY}))["ARN"]
        wiring = {"STATE_TABLE_NAME": "state", "IDEMPOTENCY_TABLE_NAME": "state", "ORDER_QUEUE_URL": queue_url,
                  "ORDER_SIGNING_SECRET_ARN": secret_arn, "ORDER_DLQ_URL": dlq_url, **layer_secret(sf)}
        control = EmulatorControl(sf)
        from order_intake import api, worker

        api.reset()
        worker.reset()
        try:
            with quiet():
                with environment(template_environment("OrderIntakeApiFunction", **wiring)):
                    results.update(_synchronous(api, control, orders))
                    accepted, queues = _accept(api, sqs, async_orders, async_batch)
                with environment(template_environment("OrderIntakeWorkerFunction", **wiring)):
                    results.update(_drain(worker, sqs, queues, control, async_orders))
            results.update(accepted)
            results["async_orders_in_salesforce"] = _count(org, "BENCH-A-")
            if results["async_orders_in_salesforce"] != async_orders or results["worker_failures"]:
                raise RuntimeError(f"{results['async_orders_in_salesforce']} of {async_orders} queued orders reached "
                                   f"Salesforce ({results['worker_failures']} failures)")
        finally:
            api.reset()
            worker.reset()
    return results


def _products(org: Org) -> None:
    pricebook = org.call("GET", "query", params={"q": "SELECT Id FROM Pricebook2 WHERE IsStandard = true"})
    pricebook_id = pricebook["records"][0]["Id"]
    product_ids = org.create("Product2", [{"Name": code.title(), "ProductCode": code, "IsActive": True}
                                          for code in PRODUCTS])
    org.create("PricebookEntry", [{"Pricebook2Id": pricebook_id, "Product2Id": p, "UnitPrice": 10, "IsActive": True}
                                  for p in product_ids])


def _post(api: Any, path: str, body: dict[str, Any]) -> tuple[float, int, dict[str, Any], float]:
    """(milliseconds, status, answer, milliseconds of it inside moto)."""
    event = _event(path, json.dumps(body).encode())
    with MotoClock().running() as moto:
        started = time.perf_counter()
        reply = api.handler(event, Context("order-intake-api", timeout_seconds=25))
        elapsed = timed_ms(started)
    return elapsed, reply["statusCode"], json.loads(reply["body"]), moto.ms()


def _synchronous(api: Any, control: EmulatorControl, orders: int) -> dict[str, Any]:
    from order_intake.models import Order
    from order_intake.salesforce import ProductCatalog, SalesforceOrders

    from salesforce_access import get_access

    for n in range(WARM_UP):  # token, secret, price book cache, code paths
        _post(api, "/orders", _order(f"BENCH-W-{n:06d}"))
    direct = SalesforceOrders(get_access().bind(Context("baseline")), ProductCatalog())
    prices, unknown, _ = direct.resolve_products(PRODUCTS)
    if unknown:
        raise RuntimeError(f"products missing from the price book: {unknown}")
    baseline: list[float] = []
    through: list[float] = []
    through_net: list[float] = []
    replays: list[float] = []
    calls: list[int] = []
    for n in range(orders):
        order = Order.model_validate(_order(f"BENCH-D-{n:06d}"))
        started = time.perf_counter()
        direct.write_order(order, prices, None)
        baseline.append(timed_ms(started))

        body = _order(f"BENCH-S-{n:06d}")
        control.clear_requests()
        elapsed, status, answer, moto_ms = _post(api, "/orders", body)
        calls.append(control.api_calls())
        if status != 201:
            raise RuntimeError(f"POST /orders answered {status}: {answer}")
        through.append(elapsed)
        through_net.append(elapsed - moto_ms)
        if n % 5 == 0:  # the same order again: answered from the ledger
            control.clear_requests()
            elapsed, status, answer, _ = _post(api, "/orders", body)
            if status != 200 or control.api_calls():
                raise RuntimeError(f"a replayed order answered {status} with {control.api_calls()} API calls")
            replays.append(elapsed)
    out: dict[str, Any] = {"sync_api_calls_per_order": sum(calls) / len(calls), "sync_api_calls_max": max(calls)}
    out["direct_p50_ms"], out["direct_p99_ms"] = p50_p99(baseline)
    out["sync_p50_ms"], out["sync_p99_ms"] = p50_p99(through)
    out["sync_without_moto_p50_ms"], _ = p50_p99(through_net)
    out["replay_p50_ms"], out["replay_p99_ms"] = p50_p99(replays)
    out["replays"] = len(replays)
    return out


def _accept(api: Any, sqs: Any, orders: int, batch: int) -> tuple[dict[str, Any], list[str]]:
    """Each request queues into a queue of its own: moto's SQS scans every message in a queue on each send, so
    one queue's backlog would make later requests look slower (SQS itself does not)."""
    times: list[float] = []
    net: list[float] = []
    queues: list[str] = []
    for start in range(0, orders, batch):
        queue_url = sqs.create_queue(QueueName=f"orders-{start:07d}", Attributes={"VisibilityTimeout": "720"})
        queues.append(queue_url["QueueUrl"])
        body = {"orders": [_order(f"BENCH-A-{n:06d}") for n in range(start, min(orders, start + batch))]}
        with environment({"ORDER_QUEUE_URL": queues[-1]}):
            api.settings.cache_clear()
            elapsed, status, answer, moto_ms = _post(api, "/orders/async", body)
        api.settings.cache_clear()
        if status != 202:
            raise RuntimeError(f"POST /orders/async answered {status}: {answer}")
        times.append(elapsed)
        net.append(elapsed - moto_ms)
    out: dict[str, Any] = {"accept_requests": len(times)}
    out["accept_p50_ms"], out["accept_p99_ms"] = p50_p99(times)
    out["accept_without_moto_p50_ms"], _ = p50_p99(net)
    return out, queues


def _drain(worker: Any, sqs: Any, queues: list[str], control: EmulatorControl, orders: int) -> dict[str, Any]:
    control.clear_requests()
    figures = {"worker_invocations": 0, "worker_failures": 0, "worker_seconds": 0.0, "worker_moto_seconds": 0.0}
    for queue_url in queues:
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        with environment({"ORDER_QUEUE_URL": queue_url}):
            worker.settings.cache_clear()
            for key, value in _drain_queue(worker, sqs, queue_url, queue_arn).items():
                figures[key] += value
        worker.settings.cache_clear()
    api_calls = control.api_calls()
    return {**figures, "worker_orders_per_second": orders / figures["worker_seconds"],
            "worker_ms_per_order": figures["worker_seconds"] * 1000 / orders,
            "worker_without_moto_ms_per_order": (figures["worker_seconds"] - figures["worker_moto_seconds"]) * 1000
            / orders,
            "async_api_calls": api_calls, "async_api_calls_per_order": api_calls / orders}


def _drain_queue(worker: Any, sqs: Any, queue_url: str, queue_arn: str) -> dict[str, Any]:
    """Lambda's event source mapping, played here: batches of up to WORKER_BATCH until the queue is empty."""
    invocations, failures, handler_seconds, moto_seconds = 0, 0, 0.0, 0.0
    while True:
        messages: list[dict[str, Any]] = []
        while len(messages) < WORKER_BATCH:
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                      MessageAttributeNames=["All"]).get("Messages", [])
            if not got:
                break
            messages += got
        if not messages:
            break
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": m["Attributes"].get("ApproximateReceiveCount", "1"),
                           "SentTimestamp": m["Attributes"].get("SentTimestamp", "0"), "SenderId": "AIDAEXAMPLE",
                           "ApproximateFirstReceiveTimestamp": "0"},
            "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn, "awsRegion": queue_arn.split(":")[3]} for m in messages]}
        with MotoClock().running() as moto:
            started = time.perf_counter()
            reply = worker.handler(event, Context("order-intake-worker", timeout_seconds=120))
            handler_seconds += time.perf_counter() - started
        moto_seconds += moto.seconds
        invocations += 1
        failed = {item["itemIdentifier"] for item in reply["batchItemFailures"]}
        failures += len(failed)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:start + 10])])
        if failed:
            break  # a benchmark does not wait out visibility timeouts: report and stop
    return {"worker_invocations": invocations, "worker_failures": failures, "worker_seconds": handler_seconds,
            "worker_moto_seconds": moto_seconds}


def _count(org: Org, prefix: str) -> int:
    soql = f"SELECT COUNT() FROM Order WHERE Ecommerce_Order_Number__c LIKE '{prefix}%'"  # noqa: S608 - a constant
    return org.call("GET", "query", params={"q": soql})["totalSize"]


def report(results: dict[str, Any]) -> str:
    r = results
    sync_rate = 1000 / r["sync_p50_ms"]
    rows = [
        ("one Composite through the layer alone (baseline: no API Gateway event, signature or ledger)",
         f"{r['direct_p50_ms']:.1f} ms", f"{r['direct_p99_ms']:.1f} ms", "1.00x", "", "1"),
        ("`POST /orders`, new order, through the warm handler", f"{r['sync_p50_ms']:.1f} ms",
         f"{r['sync_p99_ms']:.1f} ms", f"{r['sync_p50_ms'] / r['direct_p50_ms']:.2f}x",
         f"{r['sync_without_moto_p50_ms']:.1f} ms",
         f"{r['sync_api_calls_per_order']:.2f} (max {r['sync_api_calls_max']})"),
        (f"`POST /orders`, the same order again ({r['replays']} replays, ledger hit)", f"{r['replay_p50_ms']:.1f} ms",
         f"{r['replay_p99_ms']:.1f} ms", f"{r['replay_p50_ms'] / r['direct_p50_ms']:.2f}x", "", "0"),
        (f"`POST /orders/async`, {r['async_batch']} orders a request ({r['accept_requests']} requests), answer 202",
         f"{r['accept_p50_ms']:.1f} ms", f"{r['accept_p99_ms']:.1f} ms",
         f"{r['accept_p50_ms'] / r['direct_p50_ms']:.2f}x", f"{r['accept_without_moto_p50_ms']:.1f} ms", "0"),
        (f"worker, {r['async_orders']:,} queued orders in batches of {WORKER_BATCH} ({r['worker_invocations']} "
         f"invocations), per order", f"{r['worker_ms_per_order']:.2f} ms", "", "",
         f"{r['worker_without_moto_ms_per_order']:.2f} ms",
         f"{r['async_api_calls_per_order']:.3f} ({r['async_api_calls']:,} in all)"),
    ]
    return (f"{r['orders']:,} synchronous orders (three lines each), interleaved with the baseline; "
            f"{r['async_orders']:,} asynchronous orders. Throughput: synchronous {sync_rate:.0f} orders/s per "
            f"concurrent caller (1 / p50), worker {r['worker_orders_per_second']:.0f} orders/s per concurrent batch "
            f"({r['worker_orders_per_second'] / sync_rate:.1f}x).\n\n"
            + table(rows, ("measurement", "p50", "p99", "x baseline p50", "p50 without moto's own time",
                           "Salesforce API calls per order")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m patterns_benchmarks.remote_call_in")
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--async-orders", type=int, default=1000)
    args = parser.parse_args(argv)
    print(report(run(args.orders, args.async_orders)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
