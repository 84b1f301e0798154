"""The mapping file is validated before a run touches anything, with errors that name the entry; bad start
events are refused with a JSON error; no credential reaches the logs."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from customer_sync.mapping import DEFAULT_PATH, MappingError, load_mapping, parse_mapping


def test_the_packaged_mapping_is_valid_and_maps_both_ways():
    mapping = load_mapping()
    customer = {"name": " Acme ", "email": "", "phone": "+1", "active": False,
                "billing_address": {"street": "1 Road", "city": "Leeds", "postal_code": None, "country": "GB"}}
    account = mapping.to_salesforce(customer)
    assert account == {"Name": "Acme", "Phone": "+1", "Customer_Email__c": None, "BillingStreet": "1 Road",
                       "BillingCity": "Leeds", "BillingPostalCode": None, "BillingCountry": "GB", "Active__c": False}
    assert mapping.to_erp({**account, "Active__c": "false", "BillingPostalCode": ""}) == {
        "name": "Acme", "phone": "+1", "email": None, "active": False,
        "billing_address": {"street": "1 Road", "city": "Leeds", "postal_code": None, "country": "GB"}}


@pytest.mark.parametrize(("change", "message"), [
    ({"fields": [{"salesforce": "Name", "erp": "name"}, {"salesforce": "Phone", "erp": "fax"}]},
     "fields[1] (salesforce 'Phone', erp 'fax'): erp must be one of"),
    ({"fields": [{"salesforce": "Name", "erp": "name", "transform": "titlecase"}]},
     "fields[0] (salesforce 'Name', erp 'name'): transform 'titlecase' must be one of"),
    ({"fields": [{"salesforce": "Name", "erp": "name"}, {"salesforce": "Name", "erp": "phone"}]},
     "fields[1] (salesforce 'Name', erp 'phone'): salesforce field Name is already mapped by fields[0]"),
    ({"fields": [{"salesforce": "ERP_Customer_Id__c", "erp": "name"}]}, "maintained by the sync itself"),
    ({"fields": [{"salesforce": "Phone", "erp": "phone"}]}, "the ERP's required field name must be mapped"),
    ({"sync": {"conflict_rule": "coin_toss"}, "fields": [{"salesforce": "Name", "erp": "name"}]},
     "[sync] conflict_rule 'coin_toss': must be one of"),
    ({"fields": [{"salesforce": "Name", "erp": "name", "directon": "both"}]}, "unknown key(s): directon"),
])
def test_a_bad_entry_is_named(change, message):
    data = {"sync": {"on_erp_deactivation": "ignore"}, **change}
    with pytest.raises(MappingError) as raised:
        parse_mapping(data, "mapping.toml")
    assert message in str(raised.value)


def test_a_field_missing_in_the_org_stops_the_start(stack, tmp_path, monkeypatch, erp):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(DEFAULT_PATH.read_text().replace('salesforce = "Phone"', 'salesforce = "Fax__c"'))
    monkeypatch.setenv("SYNC_MAPPING_FILE", str(mapping))

    answer = stack.start()

    assert answer["status"] == "rejected"
    assert "fields[1] (salesforce 'Fax__c', erp 'phone'): Account has no field Fax__c" in answer["errors"][0]
    assert stack.pending() == 0  # nothing queued, no lock taken
    assert stack.start({"mode": "incremental"})["status"] == "rejected"


@pytest.mark.parametrize(("event", "error"), [
    ({"mode": "sideways"}, "mode: Input should be 'incremental', 'full' or 'backfill'"),
    ({"mode": "backfill"}, "since is required for mode backfill"),
    ({"mode": "full", "since": "2024-01-01T00:00:00Z"}, "since is required for mode backfill, and only for it"),
    ({"mode": "backfill", "since": "2024-01-01T00:00:00"}, "since: Input should have timezone info"),
])
def test_a_bad_start_event_is_refused_with_a_clear_error(stack, event, error):
    answer = stack.start(event)

    assert answer["status"] == "rejected"
    assert any(error in line for line in answer["errors"])


def test_backfill_resyncs_from_a_date_and_full_resyncs_everything(stack, admin, erp):
    ids = admin.create_many([{"Name": "Old customer"}])
    stack.sync()
    admin.update(ids[0], {"Name": "Old customer, renamed"})  # a person's change: its last writer is the admin
    stack.sync()
    backfill = stack.sync({"mode": "backfill", "since": "2000-01-01T00:00:00Z"})
    full = stack.sync({"mode": "full"})

    for answer in (backfill, full):
        summary = stack.summary(answer["run_id"])
        assert summary["mode"] == answer["mode"]
        # the Account is re-read and re-sent, and is equal already (skipped: unchanged); the ERP copy was last
        # written by the sync itself, so it is skipped as an echo
        assert (summary["read"], summary["created"], summary["updated"], summary["skipped"]) == (1, 0, 0, 2)
    assert len(erp.customers()) == 1


def test_no_credential_appears_in_the_logs(stack, admin, erp, salesforce):
    from salesforce_access.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)  # the redacting JSON formatter every function logs with
    stdlib_logger = logging.getLogger(logger.name)
    stdlib_logger.addHandler(handler)
    previous = stdlib_logger.level
    stdlib_logger.setLevel(logging.DEBUG)
    try:
        admin.create_many([{"Name": "Logged Ltd"}])
        erp.create("Logged GmbH")
        stack.sync()
    finally:
        stdlib_logger.removeHandler(handler)
        stdlib_logger.setLevel(previous)

    output = stream.getvalue()
    assert "customer sync run completed" in output
    key = Path(salesforce.info["private_key_file"]).read_text().splitlines()[1]
    for secret in (salesforce.info["client_secret"], salesforce.info["password"], key):
        assert secret not in output
    assert "Bearer " not in output


@pytest.mark.parametrize("name", ["customer-sync-scheduled", "customer-sync-full", "customer-sync-backfill"])
def test_the_sample_start_events_start_a_run(stack, name):
    event = json.loads((Path(__file__).resolve().parents[3] / "events" / f"{name}.json").read_text())

    answer = stack.start(event)

    assert answer["status"] == "started"
    assert answer["mode"] == ("full" if event["mode"] == "incremental" else event["mode"])  # first run: full


def test_the_sample_worker_event_for_an_unknown_step_claims_nothing(stack):
    from customer_sync import handler

    event = json.loads((Path(__file__).resolve().parents[3] / "events" / "customer-sync-worker-step.json").read_text())

    assert handler.work(event, stack.lambda_context) == {"batchItemFailures": []}
    assert stack.pending() == 0
