"""manage.py mc_rollback: roll back the running release, or route everything to an older version."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from canary.models import CanaryRelease
from canary.routing import route_for
from canary.tests.factories import publish_next, published_versions, release

pytestmark = pytest.mark.django_db


def rollback(*args: str) -> str:
    out = StringIO()
    call_command("mc_rollback", *args, stdout=out)
    return out.getvalue()


def test_rolls_back_the_running_release(tenant: Any) -> None:
    stable, canary = published_versions(tenant)
    made = release(stable, canary, weight=50)
    output = rollback("checkout")
    assert f"acme/checkout: rolled back (release #{made.pk})" in output and "now run 1.0.0 instead of 1.0.1" in output
    made.refresh_from_db()
    assert (made.state, made.weight, made.reason) == ("rolled_back", 0, "manage.py mc_rollback")
    route = route_for(tenant_id=tenant.pk, workflow_id=stable.workflow_id, idempotency_key=None)
    assert route is not None and route.version == stable and route.arm == "stable"


def test_to_an_older_version_without_a_release(tenant: Any) -> None:
    first, _, latest = published_versions(tenant, count=3)
    output = rollback("checkout", "--to", "1.0.0", "--tenant", "acme", "--reason", "bad deploy")
    assert "now run 1.0.0 instead of 1.0.2" in output
    made = CanaryRelease.objects.get()
    assert (made.state, made.stable_version, made.canary_version, made.reason) == (
        "rolled_back",
        first,
        latest,
        "bad deploy",
    )
    route = route_for(tenant_id=tenant.pk, workflow_id=first.workflow_id, idempotency_key="k")
    assert route is not None and route.version == first
    publish_next(first.workflow)  # the next publish is the next deploy: routing ends
    assert route_for(tenant_id=tenant.pk, workflow_id=first.workflow_id, idempotency_key="k") is None


def test_to_ends_a_running_release_first(tenant: Any) -> None:
    first, second, third = published_versions(tenant, count=3)
    running = release(second, third)
    rollback("checkout", "--to", "1.0.0")
    running.refresh_from_db()
    assert running.state == "rolled_back"
    assert CanaryRelease.objects.order_by("-created_at", "-id").first().stable_version == first  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["checkout"], "has no running or paused release"),
        (["nope"], "No workflow 'nope'"),
        (["checkout", "--tenant", "nobody"], "No tenant 'nobody'"),
        (["checkout", "--tenant", "globex"], "No workflow 'checkout' in tenant 'globex'"),
        (["checkout", "--to", "7.0.0"], "has no published version '7.0.0'"),
        (["checkout", "--to", "1.0.1"], "already the latest"),
    ],
)
def test_bad_input_is_a_command_error(tenant: Any, other_tenant: Any, args: list[str], message: str) -> None:
    published_versions(tenant)
    with pytest.raises(CommandError, match=message):
        rollback(*args)
    assert not CanaryRelease.objects.exists()


def test_a_name_in_several_tenants_needs_tenant(tenant: Any, other_tenant: Any) -> None:
    release(*published_versions(tenant))
    published_versions(other_tenant)
    with pytest.raises(CommandError, match=r"Several tenants .* \(acme, globex\); name one with --tenant"):
        rollback("checkout")
    assert "acme/checkout: rolled back" in rollback("checkout", "--tenant", "acme")
