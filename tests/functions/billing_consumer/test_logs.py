"""What the consumer logs: the contract and the outcome, never credentials, tokens or the message body."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import api_body


def test_logs_carry_outcomes_but_no_secrets(esm, queues, billing, org, salesforce, consumer_logs):
    contract_id, account_id = org.new_contract()
    billing.block_account("001000000000777AAA")
    queues.send(api_body(contract_id, account_id))
    queues.send(api_body("800000000000999AAA", "001000000000777AAA"))  # refused by billing
    queues.send('{"contract_id": "nope", "account_id": "Customer Name Ltd"}')
    salesforce.expire_tokens()  # forces a re-authentication mid-run: more tokens to leak

    esm.poll()

    text = consumer_logs.getvalue()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    messages = [r["message"] for r in records if "message" in r]
    assert "contract billed" in messages
    assert messages.count("permanent failure: message sent to the dead-letter queue") == 2
    billed = next(r for r in records if r.get("message") == "contract billed")
    assert billed["contract_id"] == contract_id
    assert billed["account_number"].startswith("BA-")
    info = salesforce.info
    tokens = [key for key, _ in salesforce.app.store.kv_items("token")]
    assert tokens, "the run used at least one token"
    for value in [info["client_secret"], info["password"], *tokens,
                  *Path(info["private_key_file"]).read_text().splitlines()[1:-1]]:
        assert value not in text
    assert "Customer Name Ltd" not in text  # message contents are not logged
