"""Operator screen: releases listed, and pause, resume, promote and roll back as actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from canary.tests.factories import published_versions, release
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(tenant: Any) -> Client:
    user = UserFactory(membership__tenant=tenant, membership__role="operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def act(client: Client, action: str, pk: int) -> Any:
    return client.post("/admin/canary/canaryrelease/", {"action": action, "_selected_action": [pk]}, follow=True)


def test_changelist_and_actions(operator_client: Client, tenant: Any) -> None:
    made = release(*published_versions(tenant))
    listing = operator_client.get("/admin/canary/canaryrelease/")
    assert listing.status_code == 200 and "checkout" in listing.content.decode()
    assert operator_client.get(f"/admin/canary/canaryrelease/{made.pk}/change/").status_code == 200
    for action, state in (("pause", "paused"), ("resume", "running"), ("rollback", "rolled_back")):
        response = act(operator_client, action, made.pk)
        assert f"#{made.pk}: {state}" in response.content.decode()
        made.refresh_from_db()
        assert made.state == state
    refused = act(operator_client, "promote", made.pk).content.decode()
    assert "cannot become promoted" in refused
    made.refresh_from_db()
    assert made.state == "rolled_back" and made.reason.startswith("admin: ")
