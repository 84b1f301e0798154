"""The webhook samples in events/: the signed one is accepted with the demo key (once its fixed timestamp is
allowed), the unsigned one is refused."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
from shipment_webhook import handler as webhook

from stand_ins.logistics.gateway import LocalContext

EVENTS = Path(__file__).resolve().parents[3] / "events"
DEMO_KEY = "local-demo-signing-key-0123456789"  # documented in docs/ui-update.md, for `sam local invoke`


def test_the_signed_sample_is_accepted_with_the_demo_key(bus, monkeypatch):
    arn = boto3.client("secretsmanager").create_secret(Name="demo", SecretString=DEMO_KEY)["ARN"]
    monkeypatch.setenv("LOGISTICS_SIGNING_SECRET_ARN", arn)
    monkeypatch.setenv("SIGNATURE_TOLERANCE_SECONDS", str(10**10))  # the sample's timestamp is fixed
    webhook.reset()
    result = webhook.handler(json.loads((EVENTS / "shipment-webhook-post.json").read_text()), LocalContext())
    assert result["statusCode"] == 202
    assert len(bus.received()) == 2


def test_the_signed_sample_is_stale_with_the_normal_window(bus):
    result = webhook.handler(json.loads((EVENTS / "shipment-webhook-post.json").read_text()), LocalContext())
    assert result["statusCode"] == 401


def test_the_unsigned_sample_is_refused(bus):
    result = webhook.handler(json.loads((EVENTS / "shipment-webhook-post-unsigned.json").read_text()), LocalContext())
    assert result["statusCode"] == 401
    assert "missing header" in json.loads(result["body"])["message"]
