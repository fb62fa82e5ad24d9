"""A published version never changes: not through the API (see test_publish_lifecycle),
not through the admin, and not by a direct UPDATE or DELETE in the database."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from tests.factories import UserFactory, manifest
from workflows.models import WorkflowVersion
from workflows.services import draft_save, workflow_create, workflow_publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(tenant):
    user = UserFactory(membership__tenant=tenant, membership__role="admin")
    workflow = workflow_create(tenant=tenant, actor=user, manifest=manifest())
    return workflow_publish(workflow=workflow, actor=user).version


def raw(sql: str, params: list) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("manifest", '{"name": "evil"}'),
        ("digest", "0" * 64),
        ("version", "9.9.9"),
        ("state", "draft"),
    ],
)
def test_database_rejects_update_of_published_version(published: WorkflowVersion, column: str, value: str) -> None:
    with pytest.raises(IntegrityError, match="immutable"):
        raw(f"UPDATE workflows_workflowversion SET {column} = %s WHERE id = %s", [value, published.pk])  # noqa: S608
    published.refresh_from_db()
    assert published.version == "1.0.0" and published.state == "published"


def test_database_rejects_update_of_canonical_bytes(published: WorkflowVersion) -> None:
    with pytest.raises(IntegrityError, match="immutable"):
        raw("UPDATE workflows_workflowversion SET canonical = %s WHERE id = %s", [b"{}", published.pk])


def test_database_rejects_orm_update_and_delete(published: WorkflowVersion) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkflowVersion.objects.filter(pk=published.pk).update(version="2.0.0")
    with pytest.raises(IntegrityError, match="cannot be deleted"):
        raw("DELETE FROM workflows_workflowversion WHERE id = %s", [published.pk])
    assert WorkflowVersion.objects.filter(pk=published.pk, version="1.0.0").exists()


def test_database_allows_drafts_to_change(published: WorkflowVersion) -> None:
    draft = draft_save(workflow=published.workflow, actor=None, manifest=manifest(description="next"))
    raw("UPDATE workflows_workflowversion SET manifest = %s WHERE id = %s", ['{"name": "x"}', draft.pk])
    raw("DELETE FROM workflows_workflowversion WHERE id = %s", [draft.pk])
    assert not WorkflowVersion.objects.filter(pk=draft.pk).exists()


def test_admin_shows_published_version_read_only(published: WorkflowVersion) -> None:
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    url = f"/admin/workflows/workflowversion/{published.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert published.digest in html
    assert 'name="_save"' not in html  # no save button: a read-only view
    assert client.post(url, {"version": "6.6.6", "manifest": "{}"}).status_code == 403
    assert client.post(f"/admin/workflows/workflowversion/{published.pk}/delete/", {"post": "yes"}).status_code == 403
    published.refresh_from_db()
    assert published.version == "1.0.0"


def test_admin_lists_and_searches_every_model(published: WorkflowVersion) -> None:
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    for path in (
        "tenancy/tenant",
        "tenancy/membership",
        "tenancy/apitoken",
        "workflows/workflow",
        "workflows/workflowversion",
        "receipts/receipt",
    ):
        assert client.get(f"/admin/{path}/?q=hello").status_code == 200, path
