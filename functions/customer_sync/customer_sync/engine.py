"""The synchronisation itself, free of AWS plumbing: phases over one run window, checkpointed after every
committed step so that another invocation continues exactly where this one stopped.

Phases, in order (docs/batch-sync.md explains why this order):

1. ``erp_to_salesforce``: ERP customers changed in (erp_from, erp_to], not written by the sync, upserted
   into Accounts by ERP_Customer_Id__c; conflicts with Accounts changed in Salesforce since the last run are
   decided by the mapping's rule; the ERP watermark moves to erp_to when the phase is complete.
2. ``salesforce_to_erp``: Accounts changed in (salesforce_from, salesforce_to], not by the integration user,
   upserted into the ERP by Salesforce Id; new links are written back to ERP_Customer_Id__c.
3. ``salesforce_deletes``: Accounts deleted in the window (queryAll) deactivate their ERP customer; then the
   Salesforce watermark moves to salesforce_to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from .erp import MAX_BULK, ErpCustomers
from .mapping import SyncMapping
from .report import Report
from .salesforce import SalesforceAccounts, parse_sf_datetime
from .state import RunState

PHASES = ("erp_to_salesforce", "salesforce_to_erp", "salesforce_deletes")
SF_CHUNK = 200  # sObject Collections' limit, and the size of one conflict-check query
LINK_STEP = 5_000  # Bulk result rows counted and linked in the ERP between two checkpoints


class OutOfTime(Exception):
    """The invocation must hand over: progress is checkpointed, a follow-up invocation continues."""


class Watermarks(Protocol):
    def advance_watermark(self, side: str, window_from: str | None, new: str, run_id: str) -> bool: ...


@dataclass
class SyncContext:
    erp: ErpCustomers
    salesforce: SalesforceAccounts
    mapping: SyncMapping
    report: Report
    watermarks: Watermarks
    save: Callable[[RunState], None]  # flushes the report, then persists the run (the checkpoint)
    time_left: Callable[[], float]  # seconds this invocation may still start work in
    ensure_allocation: Callable[[], None]  # raises AllocationExhausted past the configured share
    bulk_threshold: int
    bulk_part_records: int
    bulk_query_page_size: int
    erp_page_size: int
    erp_user: str


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _error_code(text: str) -> tuple[str, str]:
    """Bulk's ``sf__Error`` (``CODE:message:fields --``) as (code, message)."""
    code, _, rest = (text or "UNKNOWN:").partition(":")
    return code.strip() or "UNKNOWN", rest.strip() or text


class SyncEngine:
    def __init__(self, ctx: SyncContext, run: RunState):
        self.ctx = ctx
        self.run = run
        self.cp = run.checkpoint

    # -- driver ---------------------------------------------------------------------------------------

    def execute(self) -> None:
        """Run phases until the run is complete; raises OutOfTime (checkpointed) to hand over."""
        while self.run.phase < len(PHASES):
            getattr(self, PHASES[self.run.phase])()
            self.run.phase += 1
            self.run.checkpoint = self.cp = {}
            self._save()

    def _save(self) -> None:
        self.ctx.save(self.run)

    def _tick(self) -> None:
        """Between two committed steps: hand over if time is short; stop cleanly near the API allocation."""
        if self.ctx.time_left() <= 0:
            raise OutOfTime
        self.ctx.ensure_allocation()

    def _changed_in_salesforce(self, account: dict[str, Any]) -> bool:
        window_from = self.run.window["salesforce_from"]
        if account.get("LastModifiedById") == self.run.integration_user_id:
            return False
        if window_from is None:
            return True
        return parse_sf_datetime(account["SystemModstamp"]) > parse_sf_datetime(window_from)

    # -- phase 1: ERP -> Salesforce -------------------------------------------------------------------

    def _erp_changes(self, page_cursor: str | None, after: list[str] | None) -> Iterator[tuple[dict, str | None]]:
        """(customer, cursor of its page) in (erp_from, erp_to], ordered, after the committed key."""
        since, cutoff = self.run.window["erp_from"], self.run.window["erp_to"]
        assert cutoff is not None  # noqa: S101 - set when the run is created
        return self._erp_listing(since, cutoff, page_cursor, after, inclusive=False)

    def _erp_listing(self, since: str | None, cutoff: str | None, page_cursor: str | None, after: list[str] | None,
                     *, inclusive: bool) -> Iterator[tuple[dict, str | None]]:
        """ERP customers changed after (or at, if `inclusive`) `since` and up to `cutoff`, in (updated_at,
        customer_id) order, after the committed key `after`, each with the cursor of its page."""
        for page in self.ctx.erp.pages(since, page_cursor, self.ctx.erp_page_size):
            for customer in page.items:
                stamp = customer["updated_at"]
                if since is not None and (stamp < since if inclusive else stamp <= since):
                    continue
                if cutoff is not None and stamp > cutoff:
                    return
                if after is not None and [stamp, customer["customer_id"]] <= after:
                    continue
                yield customer, page.cursor

    def erp_to_salesforce(self) -> None:
        cp = self.cp
        if "mode" not in cp:
            volume = sum(1 for _ in islice(self._erp_changes(None, None), self.ctx.bulk_threshold + 1))
            cp.update(mode="bulk" if volume > self.ctx.bulk_threshold else "collections", jobs=[], links=[])
            self._save()
        if cp["links"]:  # links of a chunk whose Salesforce writes committed before the hand-over
            self._link_erp(cp["links"])
            cp["links"] = []
            self._save()
        if not cp.get("stream_done"):
            self._stream_erp_changes()
        for job in cp["jobs"]:
            if not job["done"]:
                self._tick()
                self._finish_ingest_job(job)
                job["done"] = True
                self._save()
        window = self.run.window
        self.ctx.watermarks.advance_watermark("erp", window["erp_from"], str(window["erp_to"]), self.run.run_id)

    def _stream_erp_changes(self) -> None:
        cp = self.cp
        bulk = cp["mode"] == "bulk"
        buffers: dict[str, list[dict[str, Any]]] = {"upsert": [], "update": []}
        pending_key: tuple[list[str], str | None] | None = None

        def submit() -> None:
            for operation, rows in buffers.items():
                if rows:
                    if group_by := self.ctx.mapping.group_by:
                        rows.sort(key=lambda row: str(row.get(group_by) or ""))
                    for job_id in self.ctx.salesforce.submit_bulk(operation, rows):
                        cp["jobs"].append({"id": job_id, "operation": operation, "done": False})
                    rows.clear()
            if pending_key is not None:
                cp["after"], cp["page_cursor"] = pending_key
            self._save()

        stream = self._erp_changes(cp.get("page_cursor"), cp.get("after"))
        for chunk in _chunks(stream, SF_CHUNK):
            if self.ctx.time_left() <= 0:
                if bulk:
                    submit()
                raise OutOfTime
            self.ctx.ensure_allocation()
            last, cursor = chunk[-1]
            plan = self._plan_erp_chunk([customer for customer, _ in chunk])
            if bulk:
                buffers["upsert"].extend(plan["upsert"])
                buffers["update"].extend(plan["update"])
                self._apply_deletes(plan["delete"])
                pending_key = ([last["updated_at"], last["customer_id"]], cursor)
                if len(buffers["upsert"]) + len(buffers["update"]) >= self.ctx.bulk_part_records:
                    submit()
            else:
                links = self._write_collections(plan)
                cp["after"], cp["page_cursor"], cp["links"] = [last["updated_at"], last["customer_id"]], cursor, links
                self._save()
                if links:
                    self._link_erp(links)
                    cp["links"] = []
                    self._save()
        if bulk:
            submit()
        cp["stream_done"] = True
        self._save()

    def _plan_erp_chunk(self, customers: list[dict[str, Any]]) -> dict[str, list]:
        """Decide per customer: conflict rule, echo, deactivation; returns the Salesforce writes."""
        run, mapping, report = self.run, self.ctx.mapping, self.ctx.report
        plan: dict[str, list] = {"upsert": [], "update": [], "delete": []}
        live = []
        for customer in customers:
            if customer.get("updated_by") == self.ctx.erp_user:
                run.count("skipped")  # our own write into the ERP: never echoed back
                continue
            run.count("read")
            live.append(customer)
        if not live:
            return plan
        # Only linked customers can have a counterpart to conflict with or to find deleted: a customer never
        # linked is new to the sync, and its upsert by key creates the Account (or updates one keyed by hand).
        # So a first load of new customers costs no query at all (docs/batch-sync.md, "Conflicts").
        linked = [c for c in live if c.get("salesforce_id")]
        matches = self.ctx.salesforce.matches([c["salesforce_id"] for c in linked],
                                              [c["customer_id"] for c in linked]) if linked else []
        by_id = {m["Id"]: m for m in matches}
        by_key = {m["ERP_Customer_Id__c"]: m for m in matches if m.get("ERP_Customer_Id__c")}
        for customer in live:
            cid, sfid = customer["customer_id"], customer.get("salesforce_id")
            account = by_key.get(cid) or (by_id.get(sfid) if sfid else None)
            if account is not None and account.get("IsDeleted"):
                run.count("failed")
                report.failure("erp_to_salesforce", code="ENTITY_IS_DELETED", customer_id=cid,
                               salesforce_id=account["Id"],
                               message="the Salesforce Account was deleted; it is not re-created from the ERP")
                continue
            if account is not None and self._changed_in_salesforce(account):
                winner = self._winner(account, customer)
                run.count("conflicts")
                report.conflict(customer_id=cid, salesforce_id=account["Id"], rule=mapping.conflict_rule,
                                winner=winner, salesforce_changed_at=account.get("LastModifiedDate"),
                                erp_changed_at=customer["updated_at"])
                if winner == "salesforce":
                    run.count("skipped")  # phase 2 carries the Salesforce version to the ERP
                    continue
            if customer.get("active") is False and mapping.on_erp_deactivation != "update":
                if mapping.on_erp_deactivation == "delete" and account is not None:
                    plan["delete"].append((cid, account["Id"]))
                else:
                    run.count("skipped")
                continue
            try:
                fields = mapping.to_salesforce(customer)
            except ValueError as exc:
                run.count("failed")
                report.failure("erp_to_salesforce", code="MAPPING_ERROR", message=str(exc), customer_id=cid,
                               salesforce_id=sfid)
                continue
            if account is not None and not account.get("ERP_Customer_Id__c"):
                plan["update"].append({"Id": account["Id"], "ERP_Customer_Id__c": cid, **fields})
            else:
                plan["upsert"].append({"ERP_Customer_Id__c": cid, **fields, "_sfid": sfid})
        if self.cp["mode"] == "bulk":  # Bulk rows carry Account fields only; links come from the job results
            for row in plan["upsert"]:
                row.pop("_sfid", None)
        return plan

    def _winner(self, account: dict[str, Any], customer: dict[str, Any]) -> str:
        rule = self.ctx.mapping.conflict_rule
        if rule == "salesforce_wins":
            return "salesforce"
        if rule == "erp_wins":
            return "erp"
        salesforce_at = parse_sf_datetime(account["LastModifiedDate"])
        erp_at = parse_sf_datetime(customer["updated_at"])
        return "erp" if erp_at > salesforce_at else "salesforce"  # a tie keeps Salesforce, the system of record

    def _write_collections(self, plan: dict[str, list]) -> list[list[str]]:
        """Synchronous writes of one chunk; returns the ERP links still to record ([customer_id, Account Id])."""
        run = self.run
        links: list[list[str]] = []
        upserts = plan["upsert"]
        if upserts:
            known = [row.pop("_sfid", None) for row in upserts]
            for row, sfid, result in zip(upserts, known, self.ctx.salesforce.upsert(upserts), strict=True):
                cid = row["ERP_Customer_Id__c"]
                if result.success:
                    run.count("created" if result.created else "updated")
                    if result.id and result.id != sfid:
                        links.append([cid, result.id])
                else:
                    self._record_sf_failure("erp_to_salesforce", result, customer_id=cid, salesforce_id=sfid)
        if plan["update"]:
            for row, result in zip(plan["update"], self.ctx.salesforce.update(plan["update"]), strict=True):
                if result.success:
                    run.count("updated")
                else:
                    self._record_sf_failure("erp_to_salesforce", result, customer_id=row["ERP_Customer_Id__c"],
                                            salesforce_id=row["Id"])
        self._apply_deletes(plan["delete"])
        return links

    def _apply_deletes(self, deletes: list[tuple[str, str]]) -> None:
        if not deletes:
            return
        for (cid, sfid), result in zip(deletes, self.ctx.salesforce.delete([d[1] for d in deletes]), strict=True):
            if result.success:
                self.run.count("deleted")
            else:
                self._record_sf_failure("erp_to_salesforce", result, customer_id=cid, salesforce_id=sfid)

    def _record_sf_failure(self, direction: str, result: Any, *, customer_id: str | None,
                           salesforce_id: str | None) -> None:
        self.run.count("failed")
        error = result.errors[0] if result.errors else None
        self.ctx.report.failure(direction, code=error.status_code if error else "UNKNOWN",
                                message=error.message if error else "no error returned",
                                customer_id=customer_id, salesforce_id=salesforce_id)

    def _link_erp(self, links: Iterable[list[str]]) -> None:
        """Record Account Ids on ERP customers, 500 per bulk update (idempotent: an unchanged link stamps
        nothing, so a replay after a hand-over writes nothing twice)."""
        for batch in _chunks(links, MAX_BULK):
            rows = [{"customer_id": cid, "salesforce_id": sfid, "updated_by": self.ctx.erp_user} for cid, sfid in batch]
            for (cid, sfid), result in zip(batch, self.ctx.erp.bulk_update(rows), strict=True):
                if result.get("result") == "error":
                    error = result.get("error") or {}
                    self.run.count("failed")
                    self.ctx.report.failure("erp_to_salesforce", code="LINK_FAILED", customer_id=cid,
                                            salesforce_id=sfid,
                                            message=f"{error.get('code', 'ERROR')}: {error.get('message', '')}")

    def _finish_ingest_job(self, job: dict[str, Any]) -> None:
        """Wait for a Bulk job, report its failed rows, count its results and link new Accounts.

        Resumable inside the job: the failures are reported once (``failures_done``), and the successful
        results are read in steps of LINK_STEP rows, each step's counts and links committed with the number
        of rows done (``successes_done``). A job's result file does not change, so a follow-up invocation
        skips exactly the rows already handled.
        """
        sf = self.ctx.salesforce
        if not job.get("failures_done"):
            sf.wait_bulk(job["id"], "ingest")  # BudgetExhausted hands over; the job is waited for again
            failed = 0
            for row in sf.bulk_failures(job["id"]):
                code, message = _error_code(row.get("sf__Error", ""))
                failed += 1
                self.ctx.report.failure("erp_to_salesforce", code=code, message=message,
                                        customer_id=row.get("ERP_Customer_Id__c"),
                                        salesforce_id=row.get("sf__Id") or row.get("Id") or None)
            self.run.count("failed", failed)
            job["failures_done"] = True
            self._save()
        done = position = int(job.get("successes_done", 0))
        counts = {"created": 0, "updated": 0}
        links: list[list[str]] = []

        def commit() -> None:
            self._link_erp(links)
            links.clear()
            for name, value in counts.items():
                self.run.count(name, value)
                counts[name] = 0
            job["successes_done"] = position
            self._save()

        for row in islice(sf.bulk_successes(job["id"]), done, None):
            position += 1
            created = row.get("sf__Created") == "true"
            counts["created" if created else "updated"] += 1
            if created:
                links.append([row["ERP_Customer_Id__c"], row["sf__Id"]])
            if (position - done) % LINK_STEP == 0:
                commit()
                self._tick()  # hands over between steps when time runs short
        commit()

    # -- phase 2: Salesforce -> ERP -------------------------------------------------------------------

    def salesforce_to_erp(self) -> None:
        cp, window, sf = self.cp, self.run.window, self.ctx.salesforce
        if "mode" not in cp:
            total = sf.count_changes(window["salesforce_from"], str(window["salesforce_to"]))
            cp.update(mode="bulk" if total > self.ctx.bulk_threshold else "rest", expected=total, links=[])
            self._save()
        if cp["links"]:
            self._link_salesforce(cp["links"])
            cp["links"] = []
            self._save()
        if cp["mode"] == "rest":
            stream = sf.rest_changes(window["salesforce_from"], str(window["salesforce_to"]), cp.get("after"))
            for chunk in _chunks(stream, MAX_BULK):
                self._tick()
                self._accounts_to_erp(chunk, {"after": [chunk[-1]["SystemModstamp"], chunk[-1]["Id"]]})
            return
        if not cp.get("job_id"):
            cp["job_id"] = sf.start_bulk_changes(window["salesforce_from"], str(window["salesforce_to"]))
            self._save()
        if not cp.get("job_ready"):
            sf.wait_bulk(cp["job_id"], "query")  # BudgetExhausted hands over with the job id kept
            cp.update(job_ready=True, locator=None, offset=0)
            self._save()
        while not cp.get("stream_done"):
            self._tick()
            with sf.bulk_page(cp["job_id"], cp["locator"], self.ctx.bulk_query_page_size) as page:
                offset = cp["offset"]
                for chunk in _chunks(islice(page.rows, offset, None), MAX_BULK):
                    self._tick()
                    offset += len(chunk)
                    self._accounts_to_erp(chunk, {"offset": offset})
            if page.next_locator is None:
                cp["stream_done"] = True
            else:
                cp.update(locator=page.next_locator, offset=0)
            self._save()
        self._link_created_accounts()

    def _accounts_to_erp(self, accounts: list[dict[str, Any]], progress: dict[str, Any]) -> None:
        run, mapping, report = self.run, self.ctx.mapping, self.ctx.report
        rows, sources = [], []
        for account in accounts:
            run.count("read")
            try:
                body = mapping.to_erp(account)
            except ValueError as exc:
                run.count("failed")
                report.failure("salesforce_to_erp", code="MAPPING_ERROR", message=str(exc),
                               customer_id=account.get("ERP_Customer_Id__c") or None, salesforce_id=account["Id"])
                continue
            rows.append({**body, "salesforce_id": account["Id"], "updated_by": self.ctx.erp_user})
            sources.append(account)
        links: list[dict[str, str]] = []
        if rows:
            for account, result in zip(sources, self._write_erp(sources, rows), strict=True):
                outcome = result.get("result")
                if outcome == "error":
                    error = result.get("error") or {}
                    run.count("failed")
                    report.failure("salesforce_to_erp", code=str(error.get("code", "ERROR")),
                                   message=str(error.get("message", "")), salesforce_id=account["Id"],
                                   customer_id=account.get("ERP_Customer_Id__c") or None)
                    continue
                run.count(outcome if outcome in ("created", "updated") else "skipped")
                if outcome == "created" and self.cp["mode"] == "bulk":
                    # Linked back by _link_created_accounts, through Bulk API 2.0, once the stream is done.
                    stamp = str(result.get("updated_at") or "")
                    if stamp:
                        progress["link_from"] = min(stamp, progress.get("link_from") or self.cp.get("link_from")
                                                    or stamp)
                        progress["link_to"] = max(stamp, progress.get("link_to") or self.cp.get("link_to") or stamp)
                        continue
                if result.get("customer_id") and account.get("ERP_Customer_Id__c") != result["customer_id"]:
                    links.append({"Id": account["Id"], "ERP_Customer_Id__c": result["customer_id"]})
        self.cp.update(progress, links=links)
        self._save()
        if links:
            self._link_salesforce(links)
            self.cp["links"] = []
            self._save()

    def _write_erp(self, accounts: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One ERP result per row, in order. An Account that carries its ERP customer id updates that customer
        by id (bulk-update, which also records the Account's Id on it); any other is upserted by Salesforce Id
        (bulk-upsert). So an Account whose link back into the ERP was lost updates its customer instead of
        creating a second one, and a key that names no ERP customer is reported, not silently replaced."""
        keyed = [i for i, account in enumerate(accounts) if account.get("ERP_Customer_Id__c")]
        keyed_set = set(keyed)
        unkeyed = [i for i in range(len(rows)) if i not in keyed_set]
        results: list[dict[str, Any]] = [{} for _ in rows]
        if keyed:
            updates = [{"customer_id": accounts[i]["ERP_Customer_Id__c"], **rows[i]} for i in keyed]
            for i, result in zip(keyed, self.ctx.erp.bulk_update(updates), strict=True):
                results[i] = result
        if unkeyed:
            for i, result in zip(unkeyed, self.ctx.erp.bulk_upsert([rows[i] for i in unkeyed]), strict=True):
                results[i] = result
        return results

    def _link_created_accounts(self) -> None:
        """Write ERP customer ids back to the Accounts phase 2 created ERP customers for, in Bulk update jobs.

        The ERP is the record of what was created: customers created in [link_from, link_to] (stamps of the
        bulk-upsert results, checkpointed with each chunk) are listed again by cursor, so the pass resumes
        exactly like phase 1's stream, and a million links cost a handful of API calls instead of 5,000.
        """
        cp, sf = self.cp, self.ctx.salesforce
        link_from, link_to = cp.get("link_from"), cp.get("link_to")
        if not link_from or not link_to:
            return
        cp.setdefault("link_jobs", [])
        if not cp.get("link_stream_done"):
            rows: list[dict[str, str]] = []
            pending: tuple[list[str], str | None] | None = None

            def submit() -> None:
                if rows:
                    cp["link_jobs"].extend({"id": job_id, "done": False} for job_id in sf.submit_bulk("update", rows))
                    rows.clear()
                if pending is not None:
                    cp["link_after"], cp["link_cursor"] = pending
                self._save()

            listing = self._erp_listing(link_from, None, cp.get("link_cursor"), cp.get("link_after"), inclusive=True)
            for chunk in _chunks(listing, MAX_BULK):
                if self.ctx.time_left() <= 0:
                    submit()
                    raise OutOfTime
                for customer, _ in chunk:
                    if customer.get("salesforce_id") and link_from <= customer["created_at"] <= link_to:
                        rows.append({"Id": customer["salesforce_id"], "ERP_Customer_Id__c": customer["customer_id"]})
                last, cursor = chunk[-1]
                pending = ([last["updated_at"], last["customer_id"]], cursor)
                if len(rows) >= self.ctx.bulk_part_records:
                    submit()
            submit()
            cp["link_stream_done"] = True
            self._save()
        for job in cp["link_jobs"]:
            if not job["done"]:
                self._tick()
                sf.wait_bulk(job["id"], "ingest")
                for row in sf.bulk_failures(job["id"]):
                    code, message = _error_code(row.get("sf__Error", ""))
                    self.run.count("failed")
                    self.ctx.report.failure("salesforce_to_erp", code="LINK_FAILED", message=f"{code}: {message}",
                                            customer_id=row.get("ERP_Customer_Id__c"), salesforce_id=row.get("Id"))
                job["done"] = True
                self._save()

    def _link_salesforce(self, links: list[dict[str, str]]) -> None:
        """Write ERP customer ids back to the Accounts created in the ERP (Collections: a few per chunk)."""
        for row, result in zip(links, self.ctx.salesforce.update(links), strict=True):
            if not result.success:
                self._record_sf_failure("salesforce_to_erp", result, customer_id=row["ERP_Customer_Id__c"],
                                        salesforce_id=row["Id"])

    # -- phase 3: Salesforce deletions -> ERP deactivations -------------------------------------------

    def salesforce_deletes(self) -> None:
        cp, window = self.cp, self.run.window
        stream = self.ctx.salesforce.rest_changes(window["salesforce_from"], str(window["salesforce_to"]),
                                                  cp.get("after"), deleted=True)
        for chunk in _chunks(stream, SF_CHUNK):
            self._tick()
            for account in chunk:
                self.run.count("read")
                cid = account.get("ERP_Customer_Id__c")
                if not cid:
                    found = self.ctx.erp.by_salesforce_id(account["Id"])
                    cid = found["customer_id"] if found else None
                result = self.ctx.erp.deactivate(cid, self.ctx.erp_user) if cid else None
                self.run.count("deleted" if result == "updated" else "skipped")
            cp["after"] = [chunk[-1]["SystemModstamp"], chunk[-1]["Id"]]
            self._save()
        self.ctx.watermarks.advance_watermark("salesforce", window["salesforce_from"], str(window["salesforce_to"]),
                                              self.run.run_id)

