"""The breach webhook: signed and fresh rolls back; a bad signature, a stale timestamp or a replay is 401
and changes nothing; a bad body is 400 with paths; no secret, no webhook."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from canary.models import CanaryRelease, WebhookDelivery
from canary.tests.factories import published_versions, release
from canary.webhook import webhook_signature
from tests.asserts import assert_error

pytestmark = pytest.mark.django_db

SECRET = "test-webhook-secret-0123456789"
URL = "/api/canary/webhook"


def send(body: Any, *, secret: str = SECRET, timestamp: int | None = None, signature: str | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "HTTP_X_MC_TIMESTAMP": stamp,
        "HTTP_X_MC_SIGNATURE": signature or webhook_signature(secret=secret, timestamp=stamp, body=raw),
    }
    return APIClient().post(URL, raw, content_type="application/json", **headers)


@pytest.fixture
def running(tenant: Any) -> CanaryRelease:
    return release(*published_versions(tenant))


BREACH = {"breach": True, "tenant": "acme", "workflow": "checkout", "reason": "error rate 7%", "sender": "alertmanager"}


def state(made: CanaryRelease) -> str:
    made.refresh_from_db()
    return made.state


@override_settings(MC_CANARY_WEBHOOK_SECRET=SECRET)
def test_a_signed_breach_rolls_the_release_back(running: CanaryRelease) -> None:
    response = send({**BREACH, "metrics": {"error_rate_pct": 7.0}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["breach"] is True and body["rolled_back"]["id"] == running.pk
    running.refresh_from_db()
    assert (running.state, running.weight) == ("rolled_back", 0)
    assert running.reason == 'webhook breach from alertmanager: error rate 7% {"error_rate_pct":7.0}'


@override_settings(MC_CANARY_WEBHOOK_SECRET=SECRET)
def test_no_breach_changes_nothing(running: CanaryRelease) -> None:
    response = send({"breach": False, "tenant": "acme", "workflow": str(running.workflow_id)})
    assert response.status_code == 200 and response.json() == {"breach": False, "rolled_back": None}
    assert state(running) == "running"


@override_settings(MC_CANARY_WEBHOOK_SECRET=SECRET)
@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"secret": "another-secret"}, "webhook_bad_signature"),
        ({"signature": "sha256=" + "0" * 64}, "webhook_bad_signature"),
        ({"signature": "garbage"}, "webhook_bad_signature"),
        ({"timestamp": int(time.time()) - 301}, "webhook_stale_timestamp"),
        ({"timestamp": int(time.time()) + 3600}, "webhook_stale_timestamp"),
    ],
)
def test_bad_signature_or_stale_timestamp_is_401(running: CanaryRelease, options: dict[str, Any], code: str) -> None:
    assert_error(send(BREACH, **options), 401, code)
    assert state(running) == "running" and not WebhookDelivery.objects.exists()


@override_settings(MC_CANARY_WEBHOOK_SECRET=SECRET)
def test_missing_or_malformed_timestamp_is_401(running: CanaryRelease) -> None:
    raw = json.dumps(BREACH).encode()
    client = APIClient()
    assert_error(client.post(URL, raw, content_type="application/json"), 401, "webhook_bad_timestamp")
    response = client.post(URL, raw, content_type="application/json", HTTP_X_MC_TIMESTAMP="yesterday")
    assert_error(response, 401, "webhook_bad_timestamp")
    assert state(running) == "running"


@override_settings(MC_CANARY_WEBHOOK_SECRET=SECRET)
def test_a_replay_is_401_and_changes_nothing(tenant: Any, running: CanaryRelease) -> None:
    stamp = int(time.time())
    assert send(BREACH, timestamp=stamp).status_code == 200
    assert state(running) == "rolled_back"
    again = release(running.stable_version, running.canary_version)
    assert_error(send(BREACH, timestamp=stamp), 401, "webhook_replayed")
    assert state(again) == "running"
    assert send(BREACH, timestamp=stamp + 1).status_code == 200  # a new signature is a new request
    assert state(again) == "rolled_back"


@override_settings(MC_CANARY_WEBHOOK_SECRET=SECRET)
@pytest.mark.parametrize(
    ("body", "status", "code", "paths"),
    [
        (b"{not json", 400, "validation_failed", [""]),
        ([True], 400, "validation_failed", None),
        ({"tenant": "acme", "workflow": "checkout"}, 400, "validation_failed", ["/breach"]),
        ({"breach": "very", "tenant": "acme", "workflow": "checkout"}, 400, "validation_failed", ["/breach"]),
        ({"breach": True, "workflow": "checkout"}, 400, "validation_failed", ["/tenant"]),
        ({**BREACH, "severity": "page"}, 400, "validation_failed", ["/severity"]),
        ({**BREACH, "metrics": [1]}, 400, "validation_failed", ["/metrics"]),
        ({**BREACH, "workflow": "nope"}, 404, "not_found", ["/workflow"]),
        ({**BREACH, "tenant": "globex"}, 404, "not_found", ["/workflow"]),
    ],
)
def test_bad_bodies_are_4xx_and_change_nothing(
    running: CanaryRelease, body: Any, status: int, code: str, paths: list[str] | None
) -> None:
    assert_error(send(body), status, code, paths)
    assert state(running) == "running" and not WebhookDelivery.objects.exists()


@override_settings(MC_CANARY_WEBHOOK_SECRET=SECRET)
def test_a_breach_without_an_active_release_is_404_and_can_be_retried(running: CanaryRelease) -> None:
    running.delete()
    stamp = int(time.time())
    assert_error(send(BREACH, timestamp=stamp), 404, "no_active_release")
    release(*published_versions(running.workflow.tenant, name="other"))  # another workflow's release is untouched
    assert not WebhookDelivery.objects.exists()


@override_settings(MC_CANARY_WEBHOOK_SECRET="")
def test_without_a_secret_the_webhook_is_disabled(running: CanaryRelease) -> None:
    assert_error(send(BREACH, secret=""), 503, "webhook_disabled")
    assert state(running) == "running"
