"""How fast the Salesforce emulator answers, so it is never mistaken for the bottleneck of a test.

Measures, through simple-salesforce over HTTPS exactly as the tests connect:
- a 10,000-record Bulk API 2.0 ingest (job created -> JobComplete),
- a 50,000-row Bulk API 2.0 query and the same rows read with REST query paging,
- single-record REST round trips (p50 / p99 of 1,000 GETs).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from simple_salesforce import Salesforce

from salesforce_emulator import Emulator
from salesforce_emulator.connection import fetch_token, https_session


def _client(emu: Emulator) -> Salesforce:
    info = emu.info
    session = https_session(info)
    return Salesforce(instance_url=info["instance_url"], session_id=fetch_token(info, session), session=session,
                      version=info["api_version"])


def run(ingest_records: int = 10_000, query_rows: int = 50_000, gets: int = 1_000) -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, Emulator(daily_api_limit=10_000_000) as emu:
        sf = _client(emu)

        csv_path = Path(tmp) / "accounts.csv"
        with csv_path.open("w") as handle:
            handle.write("Name,ERP_Customer_Id__c,NumberOfEmployees\n")
            for n in range(ingest_records):
                handle.write(f"Bench {n},B-{n:07d},{n % 500}\n")
        started = time.perf_counter()
        outcome = sf.bulk2.Account.insert(csv_file=str(csv_path), wait=0.05)
        elapsed = time.perf_counter() - started
        processed = sum(int(job["numberRecordsProcessed"]) for job in outcome)
        if processed != ingest_records:
            raise RuntimeError(f"ingest processed {processed} of {ingest_records} records")
        results["bulk_ingest_records"] = ingest_records
        results["bulk_ingest_seconds"] = elapsed
        results["bulk_ingest_records_per_second"] = ingest_records / elapsed

        extra = query_rows - ingest_records
        if extra > 0:
            with csv_path.open("w") as handle:
                handle.write("Name,NumberOfEmployees\n")
                for n in range(extra):
                    handle.write(f"Filler {n},{n % 500}\n")
            sf.bulk2.Account.insert(csv_file=str(csv_path), wait=0.05)

        started = time.perf_counter()
        rows = 0
        for page in sf.bulk2.Account.query("SELECT Id, Name, NumberOfEmployees FROM Account", max_records=50_000,
                                           wait=0.05):
            rows += page.count("\n") - 1
        elapsed = time.perf_counter() - started
        if rows < query_rows:
            raise RuntimeError(f"bulk query returned {rows} rows, expected at least {query_rows}")
        results["bulk_query_rows"] = rows
        results["bulk_query_seconds"] = elapsed
        results["bulk_query_rows_per_second"] = rows / elapsed

        started = time.perf_counter()
        rest_rows = sum(1 for _ in sf.query_all_iter("SELECT Id, Name FROM Account"))
        elapsed = time.perf_counter() - started
        results["rest_query_rows"] = rest_rows
        results["rest_query_seconds"] = elapsed
        results["rest_query_rows_per_second"] = rest_rows / elapsed

        account_id = sf.Account.create({"Name": "Latency"})["id"]
        timings = []
        for _ in range(gets):
            started = time.perf_counter()
            sf.Account.get(account_id)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        results["rest_get_p50_ms"] = statistics.median(timings)
        results["rest_get_p99_ms"] = timings[int(len(timings) * 0.99) - 1]
    return results


def report(results: dict[str, float]) -> str:
    return "\n".join([
        "| measurement | figure |",
        "|---|---|",
        f"| Bulk API 2.0 ingest, {results['bulk_ingest_records']:,.0f} Accounts (create job -> JobComplete) | "
        f"{results['bulk_ingest_seconds']:.2f} s ({results['bulk_ingest_records_per_second']:,.0f} records/s) |",
        f"| Bulk API 2.0 query, {results['bulk_query_rows']:,.0f} rows | {results['bulk_query_seconds']:.2f} s "
        f"({results['bulk_query_rows_per_second']:,.0f} rows/s) |",
        f"| REST query with nextRecordsUrl paging, {results['rest_query_rows']:,.0f} rows | "
        f"{results['rest_query_seconds']:.2f} s ({results['rest_query_rows_per_second']:,.0f} rows/s) |",
        f"| REST GET of one record, p50 / p99 over 1,000 calls | {results['rest_get_p50_ms']:.2f} ms / "
        f"{results['rest_get_p99_ms']:.2f} ms |",
    ])
