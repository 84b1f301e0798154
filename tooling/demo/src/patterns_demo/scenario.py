"""The demo's scenario: one business day through the five patterns, each through its real entry point.

1. a sales rep checks stock (SigV4-signed GET and POST to the availability API; the ERP answers);
2. a contract is signed (POST /contracts/signed -> SQS -> billing consumer -> billing -> the Contract);
3. the nightly customer sync is fired (the schedule) and synchronises both ways, with progress;
4. the web shop pushes an order (HMAC-signed POST /orders) for a customer the sync created, then replays it;
5. the carrier reports the order's shipment (logistics stand-in -> webhook -> bus -> publisher) while a
   Streaming API subscriber plays the Lightning page.

Every pattern ends with checks made in the systems themselves (the emulator through simple-salesforce, the
stand-ins through their state and request logs, moto for queues and S3), never in the answers alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import requests

from .story import Story, describe_calls, ms, salesforce_calls

HTTP_TIMEOUT = 30  # seconds, for every request the demo makes
SKUS = {"SKU-1001": "Industrial pump, 2 kW", "SKU-1002": "Pressure valve, stainless"}
PRICES = {"SKU-1001": "1249.00", "SKU-1002": "89.50"}
ORDER_NUMBER = "WEB-DEMO-000123"
TRACKING_NUMBER = "1ZDEMO0000000001"
ERP_CUSTOMER = "C-000001"  # the first of the ERP's seed customers: the sync gives it an Account (pattern 3)
PHASES = {0: "ERP -> Salesforce", 1: "Salesforce -> ERP", 2: "Salesforce deletions -> ERP"}


@dataclass
class Demo:
    """What every pattern reaches: the stack, the story, and Salesforce as a person in the org sees it."""

    stack: Any  # local.stack.LocalStack
    story: Story
    logs: list[tuple[str, str]]
    sf: Any = None  # simple_salesforce.Salesforce, logged in as the org's admin (a person, not the integration)
    admin_token: str = ""
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)  # what each pattern produced, for --report

    # -- the systems -------------------------------------------------------------------------------------------

    @property
    def emulator(self) -> Any:
        return self.stack.services.emulator

    @property
    def info(self) -> dict[str, Any]:
        return self.emulator.info

    def stand_in(self, name: str) -> Any:
        return self.stack.services.stand_ins[name]

    def login(self) -> None:
        """Salesforce as the admin user sees it (password flow); a person's writes are what the sync carries."""
        from simple_salesforce import Salesforce

        from salesforce_emulator.connection import https_session

        info = self.info
        session = https_session(info)
        response = session.post(f"{info['login_url']}/services/oauth2/token", timeout=HTTP_TIMEOUT, data={
            "grant_type": "password", "client_id": info["client_id"], "client_secret": info["client_secret"],
            "username": info["admin_username"], "password": info["admin_password"]})
        response.raise_for_status()
        self.admin_token = response.json()["access_token"]
        self.sf = Salesforce(instance_url=info["instance_url"], session_id=self.admin_token, session=session,
                             version=info["api_version"])

    def query(self, soql: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "attributes"} for r in self.sf.query_all(soql)["records"]]

    def erp_get(self, path: str) -> Any:
        erp = self.stand_in("erp")
        response = requests.get(f"{erp.url}{path}", timeout=HTTP_TIMEOUT,
                                headers={"X-Api-Key": erp.values.get("api_key", "")})
        response.raise_for_status()
        return response.json()

    def queue_depth(self, logical_id: str) -> int:
        attrs = self.stack.client("sqs").get_queue_attributes(
            QueueUrl=self.stack.queue_url(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    # -- Salesforce API calls ----------------------------------------------------------------------------------

    def watch_salesforce(self) -> None:
        """Start counting the Salesforce calls of what follows (the emulator's request log)."""
        self.emulator.clear_requests()

    def salesforce_calls(self) -> tuple[Counter[str], int]:
        """(API calls by kind, token requests) since watch_salesforce: take it before the demo's own reads."""
        calls, tokens, _ = salesforce_calls(self.emulator.requests())
        return calls, tokens

    def report_salesforce_calls(self, who: str, seen: tuple[Counter[str], int] | None = None) -> int:
        calls, tokens = seen if seen is not None else self.salesforce_calls()
        extra = f"; plus {tokens} OAuth token request{'s' if tokens != 1 else ''}" if tokens else ""
        self.story.step(f"Salesforce API calls by {who}: {describe_calls(calls)}{extra}")
        return sum(calls.values())

    def function_log(self, *functions: str, last: int = 15) -> list[str]:
        from local.stack.runtime import format_log_line

        lines = [format_log_line(fn, line) for fn, line in self.logs if fn in functions]
        return lines[-last:]


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    """The predicate's first truthy value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# -- seeding ------------------------------------------------------------------------------------------------------


def seed(demo: Demo) -> None:
    """Products and price book entries in Salesforce (the orders need them), a known stock level in the ERP."""
    from local.seed import seed_products  # the local stack's seeding, as `python -m local up` does it

    story = demo.story
    story.print()
    story.print("Seeding the systems")
    seed_products(demo.info, {sku: (name, PRICES[sku]) for sku, name in SKUS.items()})
    story.step(f"Salesforce: products {', '.join(SKUS)} with standard price book entries "
               f"({', '.join(f'{s} {p}' for s, p in PRICES.items())})")
    erp = demo.stand_in("erp")
    response = requests.put(f"{erp.url}/inventory/items/SKU-1002", timeout=HTTP_TIMEOUT,
                            headers={"X-Api-Key": erp.values.get("api_key", "")},
                            json={"description": SKUS["SKU-1002"], "unit": "EA", "warehouses": [
                                {"code": "WH-LON", "on_hand": 30, "reserved": 5},
                                {"code": "WH-FRA", "on_hand": 12, "reserved": 0}]})
    response.raise_for_status()
    story.step("ERP: SKU-1002 stock set to 42 on hand, 5 reserved (London and Frankfurt); "
               "SKU-1001 as seeded (3 warehouses)")


# -- Pattern 1 -----------------------------------------------------------------------------------------------------


def request_reply(demo: Demo) -> None:
    story, stack = demo.story, demo.stack
    erp = demo.stand_in("erp").server
    erp.clear_requests()
    demo.watch_salesforce()

    url = f"{stack.api_url}/products/SKU-1001/availability?quantity=5"
    story.sent("GET /products/SKU-1001/availability?quantity=5   (SigV4-signed, as a Named Credential signs it)")
    started = time.monotonic()
    response = requests.get(url, headers=stack.iam_headers("GET", url), timeout=HTTP_TIMEOUT)
    took = time.monotonic() - started
    one = response.json()
    if response.status_code == 200:
        story.received(f"{response.status_code} in {ms(took)} (includes the function's cold start): "
                       f"available={one['available']}, {one['quantity_available']} of {one['quantity_on_hand']} "
                       f"on hand free, in {len(one['warehouses'])} warehouses, stale={one['stale']}")
    else:
        story.received(f"{response.status_code} in {ms(took)}: {one}")

    body = json.dumps({"items": [{"sku": "SKU-1001", "quantity": 5}, {"sku": "SKU-1002", "quantity": 50}]})
    url_many = f"{stack.api_url}/availability"
    headers = {"Content-Type": "application/json"}
    story.sent(f"POST /availability {body}")
    started = time.monotonic()
    many_response = requests.post(url_many, data=body, timeout=HTTP_TIMEOUT,
                                  headers={**headers, **stack.iam_headers("POST", url_many, body, headers)})
    took = time.monotonic() - started
    many = many_response.json()
    results = {r["sku"]: r for r in many.get("results", [])}
    if many_response.status_code == 200:
        story.received(f"{many_response.status_code} in {ms(took)} (warm): " + "; ".join(
            f"{sku} x{r['requested_quantity']}: available={r['available']} ({r['quantity_available']} free)"
            for sku, r in results.items()))
    else:
        story.received(f"{many_response.status_code} in {ms(took)}: {many}")

    erp_calls_before = len(erp.requests())
    unsigned = requests.get(url, timeout=HTTP_TIMEOUT)
    erp_calls_unsigned = len(erp.requests()) - erp_calls_before
    story.sent("GET /products/SKU-1001/availability without a signature")
    story.received(f"{unsigned.status_code} {unsigned.text.strip()}")

    log = [r for r in erp.requests() if r["path"].startswith("/inventory/")]
    story.step("The ERP received: " + ("; ".join(
        f"{r['method']} {r['path']} -> {r['status']} ({r['duration_ms']:.0f} ms)" for r in log) or "nothing"))
    sf_calls = demo.report_salesforce_calls("the pattern (Salesforce only waits for the answer)")

    truth = {sku: demo.erp_get(f"/inventory/items/{sku}") for sku in SKUS}
    story.check("GET answered 200 with the ERP's figures for SKU-1001",
                response.status_code == 200 and one.get("quantity_available") == truth["SKU-1001"]["available"]
                and one.get("quantity_on_hand") == truth["SKU-1001"]["on_hand"] and one.get("available") is True,
                f"answer {one}, ERP {truth['SKU-1001']['available']} available")
    story.check("POST answered both SKUs in order, SKU-1002 short (50 asked, 37 free in the ERP)",
                many_response.status_code == 200 and list(results) == list(SKUS)
                and results["SKU-1002"]["available"] is False
                and results["SKU-1002"]["quantity_available"] == truth["SKU-1002"]["available"] == 37
                and results["SKU-1001"]["available"] is True, f"answer {many}")
    story.check("the ERP was asked for both SKUs (SKU-1001 again only if the 30 s cache had not kept it)",
                any(r["path"] == "/inventory/items/SKU-1001" and r["status"] == 200 for r in log)
                and any("SKU-1002" in r["path"] or r["path"] == "/inventory/stock-queries" for r in log),
                f"ERP log {log}")
    story.check("a request without a SigV4 signature is refused at API Gateway (403), the ERP not called",
                unsigned.status_code == 403 and erp_calls_unsigned == 0,
                f"{unsigned.status_code}, {erp_calls_unsigned} ERP calls")
    story.check("Salesforce was not called", sf_calls == 0)
    demo.facts["request_reply"] = {"get": one, "post": many, "erp_calls": len(log)}


# -- Pattern 2 -----------------------------------------------------------------------------------------------------


def fire_and_forget(demo: Demo) -> None:
    story, stack = demo.story, demo.stack
    billing = demo.stand_in("billing").server
    account = demo.sf.Account.create({"Name": "Northwind Traders", "BillingCity": "Leeds", "BillingCountry": "GB",
                                      "Phone": "+44 113 496 0000"})["id"]
    contract = demo.sf.Contract.create({"AccountId": account, "StartDate": date.today().isoformat(),
                                        "ContractTerm": 12, "Status": "Draft"})["id"]
    story.step(f"In Salesforce, a person created Account {account} (Northwind Traders) and Contract {contract}")
    billing.clear_requests()
    demo.watch_salesforce()

    message = {"contract_id": contract, "account_id": account,
               "signed_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")}
    body = json.dumps(message)
    url = f"{stack.api_url}/contracts/signed"
    headers = {"Content-Type": "application/json"}
    story.sent(f"POST /contracts/signed {body}   (SigV4; API Gateway sends it straight to SQS)")
    started = time.monotonic()
    response = requests.post(url, data=body, timeout=HTTP_TIMEOUT,
                             headers={**headers, **stack.iam_headers("POST", url, body, headers)})
    answered = time.monotonic() - started
    story.received(f"{response.status_code} in {ms(answered)}: {response.text.strip()}   "
                   "(Salesforce is free: nothing waits for billing)")

    def written_back() -> bool:  # the emulator's request log: watching costs no API call
        return any(r["method"] == "PATCH" and r["path"].endswith(f"/sobjects/Contract/{contract}")
                   for r in demo.emulator.requests())

    wait_for(written_back, 30, interval=0.05)
    done = time.monotonic() - started
    stack.wait_idle(30)
    seen = demo.salesforce_calls()
    record = demo.sf.Contract.get(contract)
    accounts = billing.accounts(contract_id=contract)
    log = [r for r in billing.requests() if r["path"].startswith("/billing-accounts")]
    for entry in log:
        story.step(f"Billing received: {entry['method']} {entry['path']} {json.dumps(entry['body'])} "
                   f"Idempotency-Key={(entry.get('headers') or {}).get('idempotency-key', '-')} -> {entry['status']}")
    if record.get("Billing_Status__c"):
        story.step(f"The billing consumer wrote back after {ms(done)}: Contract {contract} "
                   f"Billing_Account_Number__c={record['Billing_Account_Number__c']}, "
                   f"Billing_Status__c={record['Billing_Status__c']}")
    demo.report_salesforce_calls("the billing consumer", seen)

    story.sent("the same message again (SQS and Salesforce deliver at least once)")
    again = requests.post(url, data=body, timeout=HTTP_TIMEOUT,
                          headers={**headers, **stack.iam_headers("POST", url, body, headers)})
    stack.wait_idle(30)
    story.received(f"{again.status_code}; billing accounts for the contract now: "
                   f"{len(billing.accounts(contract_id=contract))}")

    story.check("API Gateway accepted the message (202 with an SQS message id)",
                response.status_code == 202 and "message_id" in response.text, response.text)
    story.check("billing opened exactly one account, even after the duplicate",
                len(billing.accounts(contract_id=contract)) == 1, f"accounts {billing.accounts(contract_id=contract)}")
    story.check("the first call to billing carried an Idempotency-Key",
                bool(log) and bool((log[0].get("headers") or {}).get("idempotency-key")), f"billing log {log}")
    number = accounts[0]["account_number"] if accounts else None
    story.check("the Contract shows the billing account number and status Active",
                bool(record) and record["Billing_Account_Number__c"] == number
                and record["Billing_Status__c"] == "Active", f"Contract {record}, billing {accounts}")
    story.check("one Salesforce call wrote the Contract back (a PATCH of the Contract)",
                seen[0].get("PATCH sobjects/Contract/{id}") == 1, f"{seen[0]}")
    story.check("the contracts queue and its dead-letter queue are empty",
                demo.queue_depth("ContractsQueue") == 0 and demo.queue_depth("ContractsDeadLetterQueue") == 0)
    demo.facts["fire_and_forget"] = {"contract_id": contract, "account_id": account, "billing_account": number,
                                     "seconds_to_write_back": round(done, 3)}


# -- Pattern 3 -----------------------------------------------------------------------------------------------------


def _run_state(demo: Demo, run_id: str) -> dict[str, Any] | None:
    table = demo.stack.model.values.ref("StateTable")
    item = demo.stack.client("dynamodb").get_item(TableName=table, Key={"id": {"S": f"customer-sync#run#{run_id}"}},
                                                  ConsistentRead=True).get("Item")
    return json.loads(item["state"]["S"]) if item else None


def batch_sync(demo: Demo, erp_customers: int = 250, salesforce_accounts: int = 150) -> None:
    story, stack = demo.story, demo.stack
    stand_in = demo.stand_in("erp")
    erp = stand_in.server
    # The ERP's clerks enter customers through its public API: POST /customers, no Salesforce Id yet
    # (tooling/stand-ins/src/stand_ins/erp/README.md), one request each, as the ERP's own screens would.
    with requests.Session() as clerk:
        clerk.headers["X-Api-Key"] = stand_in.values.get("api_key", "")
        for n in range(erp_customers):
            response = clerk.post(f"{stand_in.url}/customers", timeout=HTTP_TIMEOUT, json={
                "name": f"ERP Customer {n + 1:04d}", "email": f"buyer{n + 1}@erp.example",
                "phone": f"+44 20 7946 {n + 1:04d}", "active": True, "updated_by": "erp-clerk",
                "billing_address": {"street": f"{n + 1} Dock Road", "city": "London", "postal_code": "E16 1AA",
                                    "country": "GB"}})
            if response.status_code != 201:
                raise RuntimeError(f"ERP POST /customers answered {response.status_code}: {response.text[:300]}")
    for start in range(0, salesforce_accounts, 200):
        batch = [{"attributes": {"type": "Account"}, "Name": f"Salesforce Prospect {n + 1:04d}",
                  "Phone": f"+1 555 01{n + 1:04d}", "BillingCity": "Newark", "BillingCountry": "US",
                  "Customer_Email__c": f"buyer{n + 1}@prospect.example"}
                 for n in range(start, min(start + 200, salesforce_accounts))]
        demo.sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": batch})
    erp_before = {c["customer_id"]: c for c in erp_customer_list(demo)}
    people = demo.query(f"SELECT Id, Name FROM Account WHERE LastModifiedById != "  # noqa: S608 - an org id
                        f"'{demo.emulator.app.integration_user_id}'")
    story.step(f"During the day, people worked in both systems: {len(erp_before)} customers in the ERP "
               f"without an Account, {len(people)} Accounts in Salesforce unknown to the ERP")
    story.step("(the demo sets SYNC_WATERMARK_LAG_SECONDS=0, so changes made a second ago are in the window)")
    entered = sum(1 for r in erp.requests() if (r["method"], r["path"], r["status"]) == ("POST", "/customers", 201))
    demo.watch_salesforce()
    erp.clear_requests()

    story.sent("EventBridge Scheduler fires CustomerSyncSchedule (python -m local fire CustomerSyncSchedule)")
    started = time.monotonic()
    result = stack.fire_schedule("CustomerSyncSchedule")
    start_answer = result.payload if result is not None and result.ok else (result.error if result else None)
    story.received(f"CustomerSyncStartFunction in {ms(time.monotonic() - started)}: {json.dumps(start_answer)}")
    run_id = (start_answer or {}).get("run_id") if isinstance(start_answer, dict) else None

    state: dict[str, Any] | None = None
    if run_id:
        shown = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = _run_state(demo, run_id)
            if state:
                counters = state.get("counters", {})
                phase = f"phase {state['phase'] + 1} {PHASES[state['phase']]}" if state["phase"] in PHASES else ""
                line = (f"{state['status']:<9} step {state['step']}  {phase:<35} " +
                        " ".join(f"{k}={counters.get(k, 0)}" for k in ("read", "created", "updated", "skipped",
                                                                       "failed")))
                if line != shown:
                    story.detail(f"{ms(time.monotonic() - started):>8}  {line}")
                    shown = line
                if state["status"] in ("completed", "paused"):
                    break
            time.sleep(0.1)
    took = time.monotonic() - started
    stack.wait_idle(30)
    seen = demo.salesforce_calls()

    summary: dict[str, Any] = {}
    if run_id:
        bucket = stack.model.values.ref("CustomerSyncReportBucket")
        try:
            body = stack.client("s3").get_object(Bucket=bucket, Key=f"customer-sync/runs/{run_id}/summary.json")
            summary = json.loads(body["Body"].read())
        except Exception as exc:  # reported by the checks below
            story.step(f"no run summary in S3: {exc}")
    if summary:
        story.step(f"Run {run_id} {summary.get('status')} in {ms(took)}, {summary.get('invocations')} "
                   f"invocation(s): " + ", ".join(f"{k} {summary.get(k)}" for k in
                                                ("read", "created", "updated", "skipped", "failed", "api_calls")))

    erp_after = {c["customer_id"]: c for c in erp_customer_list(demo)}
    accounts = demo.query("SELECT Id, Name, ERP_Customer_Id__c, CreatedById FROM Account")
    by_erp_id = {a["ERP_Customer_Id__c"]: a for a in accounts if a.get("ERP_Customer_Id__c")}
    integration = demo.emulator.app.integration_user_id
    to_salesforce = [c for c in erp_before.values() if c["customer_id"] in by_erp_id
                     and by_erp_id[c["customer_id"]]["CreatedById"] == integration]
    new_in_erp = [c for cid, c in erp_after.items() if cid not in erp_before]
    erp_writes = [r for r in erp.requests() if r["method"] in ("POST", "PUT", "PATCH")]
    story.step(f"ERP -> Salesforce: {len(to_salesforce)} Accounts created, upserted by ERP_Customer_Id__c")
    story.step(f"Salesforce -> ERP: {len(new_in_erp)} customers created, each linked back to its Account")
    story.step(f"The ERP received {len(erp_writes)} writes: " + describe_calls(
        Counter(f"{r['method']} {_erp_kind(r['path'])}" for r in erp_writes)))
    sf_calls = demo.report_salesforce_calls("the sync (start and worker)", seen)

    story.check("the run completed with no failed record",
                bool(summary) and summary.get("status") == "completed" and summary.get("failed") == 0,
                f"state {state and {k: state.get(k) for k in ('status', 'pause_reason', 'counters')}}")
    story.check(f"every ERP customer has its Account in Salesforce ({len(erp_before)})",
                all(cid in by_erp_id and by_erp_id[cid]["Name"] == c["name"] for cid, c in erp_before.items()),
                f"missing {[cid for cid in erp_before if cid not in by_erp_id][:5]}")
    person_ids = {a["Id"] for a in people}
    linked = {c["salesforce_id"]: c for c in erp_after.values() if c.get("salesforce_id")}
    story.check(f"every Account entered by a person is in the ERP, linked both ways ({len(person_ids)})",
                all(pid in linked for pid in person_ids)
                and all(by_erp_id.get(linked[pid]["customer_id"], {}).get("Id") == pid for pid in person_ids
                        if pid in linked), f"missing {[p for p in person_ids if p not in linked][:5]}")
    story.check("nothing was duplicated: one ERP customer per Account",
                len(erp_after) == len(erp_before) + len(person_ids) and len(by_erp_id) == len(erp_after),
                f"ERP {len(erp_after)}, Accounts with an ERP id {len(by_erp_id)}")

    story.sent("fire the schedule again: an incremental run right after")
    second = stack.fire_schedule("CustomerSyncSchedule")
    second_id = (second.payload or {}).get("run_id") if second is not None and second.ok else None
    second_state = wait_for(lambda: (s := _run_state(demo, second_id)) and s["status"] in ("completed", "paused")
                            and s, 60) if second_id else None
    stack.wait_idle(30)
    counters = (second_state or {}).get("counters", {})
    story.received(f"run {second_id}: {(second_state or {}).get('status')}, " +
                   ", ".join(f"{k} {counters.get(k, 0)}" for k in ("read", "created", "updated")))
    story.check("the second run found nothing to copy: the sync never echoes its own writes",
                bool(second_state) and second_state["status"] == "completed"
                and counters.get("created", 0) == 0 and counters.get("updated", 0) == 0,
                f"second run {second_state}")
    story.check("Salesforce calls stayed few (Collections of 200, not one per record)",
                0 < sf_calls <= 20 + (len(erp_before) + len(person_ids)) // 100, f"{sf_calls} calls")
    demo.facts["batch_sync"] = {"run_id": run_id, "summary": summary, "to_salesforce": len(to_salesforce),
                                "to_erp": len(new_in_erp), "salesforce_api_calls": sf_calls,
                                "second_run": counters, "erp_customers_entered_over_http": entered}


def _erp_kind(path: str) -> str:
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "customers" and parts[1].startswith("C-"):
        parts[1] = "{id}"
    if len(parts) >= 3 and parts[1] == "by-salesforce-id":
        parts[2] = "{id}"
    return "/" + "/".join(parts)


def erp_customer_list(demo: Demo) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = demo.erp_get("/customers?limit=500" + (f"&cursor={cursor}" if cursor else ""))
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


# -- Pattern 4 -----------------------------------------------------------------------------------------------------


def _signed(key: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(timestamp or int(time.time()))
    signature = hmac.new(key.encode(), b"v1:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Signature-Timestamp": ts, "X-Signature": f"v1={signature}"}


def remote_call_in(demo: Demo) -> None:
    story, stack = demo.story, demo.stack
    key = json.loads(stack.secret_value("OrderSigningSecret"))["current"]
    customer = next((c for c in erp_customer_list(demo) if c["customer_id"] == ERP_CUSTOMER), None)
    name = customer["name"] if customer else "Acme Industrial Ltd"
    existing = demo.query(f"SELECT Id FROM Account WHERE ERP_Customer_Id__c = '{ERP_CUSTOMER}'")  # noqa: S608
    order = {
        "order_number": ORDER_NUMBER, "order_date": date.today().isoformat(),
        "customer": {"erp_customer_id": ERP_CUSTOMER, "name": name, "phone": "+44 20 7946 0001"},
        "billing_address": {"street": "1 Dock Road", "city": "London", "postal_code": "E16 1AA", "country": "GB"},
        "shipping_address": {"street": "Unit 4, Thames Wharf", "city": "London", "postal_code": "E16 2QU",
                             "country": "GB"},
        "lines": [{"product_code": "SKU-1001", "quantity": 2, "unit_price": PRICES["SKU-1001"]},
                  {"product_code": "SKU-1002", "quantity": 6, "unit_price": PRICES["SKU-1002"],
                   "description": "spare valves"}],
        "updated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    body = json.dumps(order).encode()
    url = f"{stack.api_url}/orders"
    base = {"Content-Type": "application/json", "x-api-key": stack.api_key}
    story.step(f"Customer {ERP_CUSTOMER} ({name}) " + (f"already has Account {existing[0]['Id']} (the sync made it)"
                                                       if existing else "has no Account yet"))
    demo.watch_salesforce()

    story.sent(f"POST /orders {ORDER_NUMBER}: 2 lines   (x-api-key + HMAC-SHA256 signature of the raw body)")
    started = time.monotonic()
    first = requests.post(url, data=body, headers={**base, **_signed(key, body)}, timeout=HTTP_TIMEOUT)
    took = time.monotonic() - started
    created = first.json()
    story.received(f"{first.status_code} in {ms(took)}: {json.dumps(created)}")
    calls_first, tokens = demo.salesforce_calls()
    demo.report_salesforce_calls("the first call (a cold start: limits and price book read, then the write)",
                                 (calls_first, tokens))

    demo.watch_salesforce()
    story.sent(f"POST /orders {ORDER_NUMBER} again (the platform retries after a lost answer)")
    started = time.monotonic()
    replay = requests.post(url, data=body, headers={**base, **_signed(key, body)}, timeout=HTTP_TIMEOUT)
    took = time.monotonic() - started
    replayed = replay.json()
    story.received(f"{replay.status_code} in {ms(took)}: status={replayed.get('status')}, same ids: "
                   f"{replayed.get('salesforce') == created.get('salesforce')}")
    calls_replay, tokens = demo.salesforce_calls()
    demo.report_salesforce_calls("the replay (the order ledger in DynamoDB answers it)", (calls_replay, tokens))

    forged = dict(order, lines=[dict(order["lines"][0], quantity=200)])
    forged_body = json.dumps(forged).encode()
    story.sent("POST /orders with a body changed after signing (quantity 2 -> 200)")
    tampered = requests.post(url, data=forged_body, headers={**base, **_signed(key, body)}, timeout=HTTP_TIMEOUT)
    story.received(f"{tampered.status_code} {tampered.text.strip()}")

    ids = created.get("salesforce") or {}
    orders = demo.query("SELECT Id, AccountId, Status, EffectiveDate, Pricebook2Id, "  # noqa: S608 - a constant
                        f"Ecommerce_Order_Number__c FROM Order WHERE Ecommerce_Order_Number__c = '{ORDER_NUMBER}'")
    items = demo.query(f"SELECT Id, PricebookEntryId, Quantity, UnitPrice FROM OrderItem "  # noqa: S608 - an id
                       f"WHERE OrderId = '{ids.get('order_id')}'") if ids.get("order_id") else []
    entries = {e["Id"]: e["Product2Id"] for e in demo.query("SELECT Id, Product2Id FROM PricebookEntry")}
    products = {p["Id"]: p["ProductCode"] for p in demo.query("SELECT Id, ProductCode FROM Product2")}
    lines = sorted((products.get(entries.get(i["PricebookEntryId"], ""), "?"), i["Quantity"]) for i in items)
    accounts = demo.query(f"SELECT Id, Name FROM Account WHERE ERP_Customer_Id__c = '{ERP_CUSTOMER}'")  # noqa: S608
    story.step(f"In Salesforce: Order {ids.get('order_id')} on Account {ids.get('account_id')}, lines "
               + ", ".join(f"{code} x{qty:g}" for code, qty in lines))

    story.check("the order was created (201) with the Salesforce ids", first.status_code == 201
                and created.get("status") == "created" and bool(ids.get("order_id")), json.dumps(created))
    story.check("one Order with that number, on the customer's Account, with both lines",
                len(orders) == 1 and orders[0]["Id"] == ids.get("order_id")
                and orders[0]["AccountId"] == ids.get("account_id")
                and lines == [("SKU-1001", 2.0), ("SKU-1002", 6.0)], f"orders {orders}, lines {lines}")
    story.check("the customer has exactly one Account" + (", the one the sync created" if existing else ""),
                len(accounts) == 1 and (not existing or accounts[0]["Id"] == existing[0]["Id"]), f"{accounts}")
    story.check("the order was written by one all-or-none Composite, nothing else wrote",
                calls_first.get("POST composite", 0) == 1
                and all(kind.startswith("GET ") for kind in calls_first if kind != "POST composite"),
                f"{calls_first}")
    story.check("the replay answered 200 unchanged with the same ids and no Salesforce call",
                replay.status_code == 200 and replayed.get("status") == "unchanged"
                and replayed.get("salesforce") == ids and sum(calls_replay.values()) == 0,
                f"{replay.status_code} {replayed}, calls {calls_replay}")
    story.check("a tampered body is refused (401) and nothing changes",
                tampered.status_code == 401 and len(demo.query(
                    f"SELECT Id FROM OrderItem WHERE OrderId = '{ids.get('order_id')}' "  # noqa: S608 - an id
                    "AND Quantity = 200")) == 0)
    demo.facts["remote_call_in"] = {"order_number": ORDER_NUMBER, "salesforce": ids, "replay": replayed.get("status"),
                                    "api_calls_first": sum(calls_first.values()),
                                    "api_calls_replay": sum(calls_replay.values())}


# -- Pattern 5 -----------------------------------------------------------------------------------------------------


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class Timeline:
    """Lines from several sources, printed in time order a moment after they happen (sources lag a little)."""

    def __init__(self, story: Story, started_wall: float):
        self.story, self.started_wall = story, started_wall
        self.pending: list[tuple[float, str]] = []

    def add(self, record: dict[str, Any] | None, text: str) -> None:
        """At the log record's own timestamp (Powertools: '2026-01-01 10:00:00,123+0000'), else now."""
        at = time.time()
        if record and record.get("timestamp"):
            with contextlib.suppress(ValueError):
                at = datetime.strptime(record["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
        self.pending.append((at - self.started_wall, text))

    def flush(self, older_than: float = 0.0) -> None:
        now = time.time() - self.started_wall
        ready = sorted(p for p in self.pending if now - p[0] >= older_than)
        self.pending = [p for p in self.pending if now - p[0] < older_than]
        for at, text in ready:
            self.story.detail(f"{ms(at):>8}  {text}")


def _log_record(line: str) -> dict[str, Any]:
    """A Powertools JSON log line as a dict ({} for anything else)."""
    try:
        record = json.loads(line) if line.startswith("{") else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def ui_update(demo: Demo) -> None:
    from salesforce_emulator.subscriber import EventSubscriber

    story, stack = demo.story, demo.stack
    carrier = demo.stand_in("logistics").server
    order_id = (demo.facts.get("remote_call_in") or {}).get("salesforce", {}).get("order_id")
    info = demo.info
    subscriber = EventSubscriber(info["instance_url"], demo.admin_token, info["ca_bundle"],
                                 "/event/Shipment_Status__e", replay_id=-1, api_version=info["api_version"])
    received: list[tuple[float, dict[str, Any]]] = []
    try:
        subscriber.subscribe()
        story.step("The Order page subscribes to /event/Shipment_Status__e (CometD, as lightning/empApi does)")
        demo.watch_salesforce()
        journey = {"tracking_number": TRACKING_NUMBER, "order": "shuffle", "seed": 5, "duplicates": 1,
                   "interval_seconds": 0.8, "carrier": "Local Parcel", "location": "London",
                   "wait": False}
        if order_id:
            journey["order_number"] = ORDER_NUMBER
        started, started_wall = time.monotonic(), time.time()
        answer = requests.post(f"{carrier.url}/shipments", json=journey, timeout=HTTP_TIMEOUT)
        answer.raise_for_status()
        sending = answer.json()["events"]
        story.sent(f"The carrier reports {len(sending)} events for {TRACKING_NUMBER}, out of order and one twice: "
                   + ", ".join(e["status"] for e in sending))
        story.step("What each system saw, as it happened (the functions' own log lines, the UI's messages):")
        timeline = Timeline(story, started_wall)
        seen_logs = len(demo.logs)
        sends = 0
        results: list[str] = []
        quiet_since = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            messages = subscriber.poll(0.25)
            lines, seen_logs = demo.logs[seen_logs:], seen_logs + len(demo.logs[seen_logs:])
            for function, line in lines:
                record = _log_record(line)
                text = record.get("message", "")
                if function == "ShipmentWebhookFunction" and text == "shipment events accepted":
                    status = sending[sends]["status"] if sends < len(sending) else "?"
                    sends += 1
                    timeline.add(record, f"carrier -> webhook   {status:<17} 202, put on the logistics bus")
                elif function == "ShipmentWebhookFunction" and record.get("level") in ("WARNING", "ERROR"):
                    sends += 1
                    timeline.add(record, f"carrier -> webhook   refused: {text}")
                elif function == "ShipmentStatusFunction" and text.startswith("shipment change "):
                    why = {"stale": "older than the record: ignored", "duplicate": "already applied: ignored",
                           "published": "Shipment__c upserted, Shipment_Status__e published"}
                    result = record.get("result", "?")
                    results.append(result)
                    timeline.add(record, f"bus -> publisher    {record.get('status', '?'):<17} "
                                         f"{result}: {why.get(result, record.get('detail') or '')}")
            for message in messages:
                payload = message["data"]["payload"]
                received.append((time.monotonic() - started, payload))
                timeline.add(None, f"UI shows            {payload['Status__c']:<17} "
                                   f"(status time {payload.get('Status_Time__c')})")
            timeline.flush(older_than=0.6)
            if len(carrier.deliveries()) >= len(sending) and not stack.activity.busy:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 1.0:
                    break
            else:
                quiet_since = None
        timeline.flush()
        stack.wait_idle(30)
        seen = demo.salesforce_calls()
        for message in subscriber.poll(0.3):
            received.append((time.monotonic() - started, message["data"]["payload"]))
    finally:
        subscriber.close()

    shipments = demo.query("SELECT Id, Name, Status__c, Status_Updated_At__c, Carrier__c, Order__c "  # noqa: S608
                           f"FROM Shipment__c WHERE Tracking_Number__c = '{TRACKING_NUMBER}'")  # a constant
    shipment = shipments[0] if shipments else {}
    story.step(f"After a reload the record says: Shipment__c {shipment.get('Id')} Status__c={shipment.get('Status__c')}"
               f" Status_Updated_At__c={shipment.get('Status_Updated_At__c')} Order__c={shipment.get('Order__c')}")
    sf_calls = demo.report_salesforce_calls("the publisher", seen)

    deliveries = carrier.deliveries()
    delivered_time = next((e["status_time"] for e in sending if e["status"] == "Delivered"), None)
    times = [_parse_time(p.get("Status_Time__c")) for _, p in received]
    statuses = [p["Status__c"] for _, p in received]
    story.check("every webhook call was accepted (202)",
                len(deliveries) == len(sending) and all(d["status"] == 202 for d in deliveries),
                f"{[(d['statuses'], d['status']) for d in deliveries]}")
    story.check("the UI received the statuses live, ending with Delivered",
                bool(statuses) and statuses[-1] == "Delivered", f"received {statuses}")
    story.check("the UI never went backwards (late and duplicate events were not published)",
                all(a is not None and b is not None and a < b for a, b in itertools.pairwise(times))
                and len(statuses) == len(set(statuses)), f"received {list(zip(statuses, times, strict=False))}")
    story.check("the Shipment__c record is Delivered, with the Delivered status time",
                shipment.get("Status__c") == "Delivered"
                and _parse_time(shipment.get("Status_Updated_At__c")) == _parse_time(delivered_time),
                f"{shipment}, Delivered at {delivered_time}")
    if order_id:
        story.check(f"the shipment is linked to Order {order_id} ({ORDER_NUMBER})",
                    shipment.get("Order__c") == order_id, f"{shipment.get('Order__c')}")
    story.check("nothing in the publisher's dead-letter queue",
                demo.queue_depth("ShipmentStatusDeadLetterQueue") == 0)
    published = results.count("published")
    # A "busy" invocation found another one updating the shipment, wrote nothing and failed, so Lambda's
    # asynchronous retry delivered the same event again: it is not an event of its own.
    settled = [r for r in results if r != "busy"]
    calls = seen[0]
    story.check(f"only the {published} newer statuses reached Salesforce (one upsert and one event each); "
                "the late and the duplicate event wrote nothing",
                published == len(statuses) and calls.get("POST composite/sobjects") == published
                and calls.get("PATCH composite/sobjects/Shipment__c/Tracking_Number__c") == published
                and len(settled) == len(sending), f"publisher results {results}, calls {dict(calls)}")
    demo.facts["ui_update"] = {"tracking_number": TRACKING_NUMBER, "sent": len(sending), "ui_received": statuses,
                               "shipment": shipment, "salesforce_api_calls": sf_calls,
                               "publisher_results": results}


PATTERNS: list[tuple[str, str, Callable[[Demo], None], tuple[str, ...]]] = [
    ("Request and Reply", "a sales rep checks product availability in the ERP", request_reply,
     ("AvailabilityFunction",)),
    ("Fire and Forget", "a signed contract opens a billing account", fire_and_forget,
     ("BillingConsumerFunction",)),
    ("Batch Data Synchronization", "the nightly customer sync, both ways", batch_sync,
     ("CustomerSyncStartFunction", "CustomerSyncWorkerFunction")),
    ("Remote Call-In", "the web shop pushes an order into Salesforce", remote_call_in,
     ("OrderIntakeApiFunction",)),
    ("UI Update Based on Data Changes", "the carrier's status appears live on the Order page", ui_update,
     ("ShipmentWebhookFunction", "ShipmentStatusFunction")),
]


def run_pattern(demo: Demo, number: int, only: set[int] | None = None) -> float:
    """Run one pattern; an exception is a failed check (the demo goes on with the next pattern)."""
    name, headline, action, functions = PATTERNS[number - 1]
    demo.story.section(number, len(PATTERNS), name, headline)
    failures_before = len(demo.story.failures)
    started = time.monotonic()
    try:
        action(demo)
    except Exception as exc:
        demo.story.fail(f"{name} did not complete", f"{type(exc).__name__}: {exc}")
    took = time.monotonic() - started
    if len(demo.story.failures) > failures_before:
        lines = demo.function_log(*functions)
        if lines:
            demo.story.step("Last log lines of " + ", ".join(functions) + ":")
            for line in lines:
                demo.story.detail(line)
    demo.story.step(f"({name}: {took:.1f} s)")
    return took


__all__ = ["PATTERNS", "Demo", "run_pattern", "seed"]
