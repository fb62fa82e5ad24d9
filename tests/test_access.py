"""Who may see and do what: tenant isolation, the role matrix, authentication, and the CLI that issues access."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import ApiToken, Membership, Tenant
from mc_project.tenancy.services import token_create, token_revoke
from receipts.models import Receipt
from tests.asserts import assert_error
from tests.factories import UserFactory, manifest
from workflows.models import Workflow, WorkflowVersion

pytestmark = pytest.mark.django_db

# Least to most powerful, written out here rather than taken from the app, so the test states the rule.
ROLE_ORDER = ["viewer", "author", "publisher", "operator", "admin"]


def tenant_state(tenant: Tenant) -> dict[str, Any]:
    """Everything a foreign or unauthorised request could have changed in ``tenant``."""
    return {
        "workflows": list(
            Workflow.objects.filter(tenant=tenant).order_by("id").values("id", "name", "description", "updated_at")
        ),
        "versions": list(
            WorkflowVersion.objects.filter(workflow__tenant=tenant)
            .order_by("id")
            .values("id", "state", "version", "digest", "manifest", "updated_at")
        ),
        "receipts": list(Receipt.objects.filter(tenant=tenant).order_by("id").values_list("id", flat=True)),
    }


@dataclass(frozen=True)
class Seeded:
    """Ids of one tenant's objects: a workflow with a published version, a receipt and a new draft."""

    workflow: str
    version: str
    digest: str  # hex, without the sha256: prefix
    receipt: str

    def url(self, template: str) -> str:
        return template.format(workflow=self.workflow, version=self.version, digest=self.digest, receipt=self.receipt)


@pytest.fixture
def seeded(publisher: APIClient) -> Seeded:
    created = publisher.post("/api/workflows", {"manifest": manifest()}, format="json")
    assert created.status_code == 201, created.json()
    wf_id = created.json()["id"]
    published = publisher.post(f"/api/workflows/{wf_id}/publish", {}, format="json")
    assert published.status_code == 201, published.json()
    body = published.json()
    draft = publisher.put(f"/api/workflows/{wf_id}/draft", {"manifest": manifest(description="next")}, format="json")
    assert draft.status_code == 200, draft.json()
    return Seeded(
        workflow=wf_id,
        version=body["version"]["version"],
        digest=body["version"]["digest"].removeprefix("sha256:"),
        receipt=body["receipt_id"],
    )


# --- tenant isolation ---------------------------------------------------------------------

LIST_ENDPOINTS = [
    "/api/workflows",
    "/api/workflows?name=hello-world",
    "/api/workflows?search=hello",
    "/api/workflows?state=published",
    "/api/workflows?state=draft",
    "/api/receipts",
]

# One row per endpoint that takes an object id: (method, path, body). A new endpoint is one line.
FOREIGN_OBJECT_ENDPOINTS = [
    pytest.param("GET", "/api/workflows/{workflow}", None, id="workflow-get"),
    pytest.param("PATCH", "/api/workflows/{workflow}", {"description": "hijacked"}, id="workflow-patch"),
    pytest.param("GET", "/api/workflows/{workflow}/draft", None, id="draft-get"),
    pytest.param("PUT", "/api/workflows/{workflow}/draft", {"manifest": manifest(description="x")}, id="draft-put"),
    pytest.param("DELETE", "/api/workflows/{workflow}/draft", None, id="draft-delete"),
    pytest.param("POST", "/api/workflows/{workflow}/publish", {}, id="publish"),
    pytest.param("GET", "/api/workflows/{workflow}/versions", None, id="versions-list"),
    pytest.param("GET", "/api/workflows/{workflow}/versions/{version}", None, id="version-get"),
    pytest.param("PUT", "/api/workflows/{workflow}/versions/{version}", {"manifest": manifest()}, id="version-put"),
    pytest.param("PATCH", "/api/workflows/{workflow}/versions/{version}", {"manifest": manifest()}, id="version-patch"),
    pytest.param("DELETE", "/api/workflows/{workflow}/versions/{version}", None, id="version-delete"),
    pytest.param("GET", "/api/snapshots/sha256:{digest}", None, id="snapshot-get"),
    pytest.param("GET", "/api/receipts/{receipt}", None, id="receipt-get"),
]


def send(client: APIClient, method: str, url: str, body: Any = None) -> Any:
    if body is None:
        return client.generic(method, url)
    return getattr(client, method.lower())(url, body, format="json")


@pytest.mark.parametrize("url", LIST_ENDPOINTS)
def test_lists_show_nothing_of_another_tenant(
    seeded: Seeded, publisher: APIClient, outsider: APIClient, url: str
) -> None:
    own = publisher.get(url)
    assert own.status_code == 200 and own.json()["count"] >= 1  # the row exists, so an empty list means something
    foreign = outsider.get(url)
    assert foreign.status_code == 200, foreign.json()
    assert foreign.json()["count"] == 0 and foreign.json()["results"] == []


@pytest.mark.parametrize(("method", "path", "body"), FOREIGN_OBJECT_ENDPOINTS)
def test_another_tenants_objects_are_404_and_stay_unchanged(
    seeded: Seeded, tenant: Tenant, outsider: APIClient, method: str, path: str, body: Any
) -> None:
    before = tenant_state(tenant)
    error = assert_error(send(outsider, method, seeded.url(path), body), 404, "not_found")
    assert seeded.workflow not in error["message"] and seeded.receipt not in error["message"]
    assert tenant_state(tenant) == before


def test_every_foreign_read_works_for_the_owner(seeded: Seeded, viewer: APIClient) -> None:
    """The 404s above are about the tenant, not about broken URLs: the same reads work at home."""
    for param in FOREIGN_OBJECT_ENDPOINTS:
        method, path, _ = param.values
        if method == "GET":
            response = viewer.get(seeded.url(path))
            assert response.status_code == 200, (path, response.content[:300])


def test_all_foreign_attempts_together_change_nothing(seeded: Seeded, tenant: Tenant, outsider: APIClient) -> None:
    before = tenant_state(tenant)
    for param in FOREIGN_OBJECT_ENDPOINTS:
        method, path, body = param.values
        assert send(outsider, method, seeded.url(path), body).status_code == 404, path
    after = tenant_state(tenant)
    assert after == before
    draft = WorkflowVersion.objects.get(workflow_id=seeded.workflow, state="draft")
    assert draft.manifest["description"] == "next"
    assert WorkflowVersion.objects.filter(workflow_id=seeded.workflow, state="published").count() == 1
    assert Workflow.objects.get(pk=seeded.workflow).description == "A test workflow"


def test_workflow_names_are_unique_per_tenant_only(seeded: Seeded, outsider: APIClient, other_tenant: Tenant) -> None:
    response = outsider.post("/api/workflows", {"manifest": manifest()}, format="json")
    assert response.status_code == 201, response.json()
    theirs = response.json()
    assert theirs["name"] == "hello-world" and theirs["id"] != seeded.workflow
    listing = outsider.get("/api/workflows?name=hello-world").json()
    assert [w["id"] for w in listing["results"]] == [theirs["id"]]
    assert Workflow.objects.get(pk=theirs["id"]).tenant == other_tenant


# --- role matrix --------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    method: str
    path: str
    least: str
    ok: int
    body: Any = None


ACTIONS = {
    "list-workflows": Action("GET", "/api/workflows", Role.VIEWER, 200),
    "get-workflow": Action("GET", "/api/workflows/{workflow}", Role.VIEWER, 200),
    "get-draft": Action("GET", "/api/workflows/{workflow}/draft", Role.VIEWER, 200),
    "list-versions": Action("GET", "/api/workflows/{workflow}/versions", Role.VIEWER, 200),
    "list-receipts": Action("GET", "/api/receipts", Role.VIEWER, 200),
    "me": Action("GET", "/api/me", Role.VIEWER, 200),
    "validate-manifest": Action("POST", "/api/manifests/validate", Role.VIEWER, 200, {"manifest": manifest()}),
    "create-workflow": Action("POST", "/api/workflows", Role.AUTHOR, 201, {"manifest": manifest(name="another")}),
    "patch-description": Action("PATCH", "/api/workflows/{workflow}", Role.AUTHOR, 200, {"description": "changed"}),
    "put-draft": Action(
        "PUT", "/api/workflows/{workflow}/draft", Role.AUTHOR, 200, {"manifest": manifest(description="changed")}
    ),
    "delete-draft": Action("DELETE", "/api/workflows/{workflow}/draft", Role.AUTHOR, 204),
    "publish": Action("POST", "/api/workflows/{workflow}/publish", Role.PUBLISHER, 201, {}),
}


@pytest.mark.parametrize("role", ROLE_ORDER)
@pytest.mark.parametrize("name", list(ACTIONS))
def test_role_matrix(make_client: Callable[..., APIClient], tenant: Tenant, role: str, name: str) -> None:
    action = ACTIONS[name]
    admin = make_client(Role.ADMIN, tenant)
    created = admin.post("/api/workflows", {"manifest": manifest()}, format="json")
    assert created.status_code == 201, created.json()
    url = action.path.format(workflow=created.json()["id"])
    client = make_client(role, tenant)
    before = tenant_state(tenant)

    response = send(client, action.method, url, action.body)

    if ROLE_ORDER.index(role) >= ROLE_ORDER.index(action.least):
        assert response.status_code == action.ok, (response.status_code, response.content[:500])
        if name == "me":
            assert response.json()["role"] == role
            assert response.json()["tenant"]["slug"] == tenant.slug
    else:
        error = assert_error(response, 403, "permission_denied")
        assert action.least in error["message"], error
        assert tenant_state(tenant) == before


# --- authentication -----------------------------------------------------------------------


def token_client(raw: str, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {raw}")
    return client


@pytest.fixture
def member(tenant: Tenant) -> Any:
    return UserFactory(membership__tenant=tenant, membership__role=Role.AUTHOR)


def test_no_credentials_is_401_with_challenge(db: Any) -> None:
    response = APIClient().get("/api/workflows")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"]


def test_unknown_token_is_401(db: Any) -> None:
    response = token_client("mc_not-a-real-token").get("/api/workflows")
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header",
    ["Token", "Token a b", "Bearer", "Token \u00e9t\u00e9"],
    ids=["keyword-only", "three-parts", "bearer-only", "non-ascii"],
)
def test_malformed_authorization_header_is_401(db: Any, header: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_error(client.get("/api/workflows"), 401, "authentication_failed")


def test_revoked_token_is_401(member: Any) -> None:
    token, raw = token_create(user=member)
    client = token_client(raw)
    assert client.get("/api/workflows").status_code == 200
    token_revoke(token=token)
    assert_error(client.get("/api/workflows"), 401, "authentication_failed")


def test_expired_token_is_401(member: Any) -> None:
    _, raw = token_create(user=member, expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(token_client(raw).get("/api/workflows"), 401, "authentication_failed")
    _, fresh = token_create(user=member, expires_at=timezone.now() + timedelta(hours=1))
    assert token_client(fresh).get("/api/workflows").status_code == 200


def test_inactive_users_token_is_401(member: Any) -> None:
    _, raw = token_create(user=member)
    member.is_active = False
    member.save(update_fields=["is_active"])
    assert_error(token_client(raw).get("/api/workflows"), 401, "authentication_failed")


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "bearer", "TOKEN"])
def test_token_and_bearer_keywords_both_work(member: Any, tenant: Tenant, keyword: str) -> None:
    _, raw = token_create(user=member)
    response = token_client(raw, keyword).get("/api/me")
    assert response.status_code == 200, response.json()
    assert response.json()["username"] == member.username
    assert response.json()["tenant"]["slug"] == tenant.slug


def test_token_use_is_recorded(member: Any) -> None:
    token, raw = token_create(user=member)
    assert token.last_used_at is None
    token_client(raw).get("/api/workflows")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_user_without_tenant_is_403_everywhere(db: Any) -> None:
    loner = get_user_model().objects.create_user(username="loner", password="pw-123456")
    _, raw = token_create(user=loner)
    client = token_client(raw)
    for url in ("/api/workflows", "/api/me", "/api/receipts"):
        assert_error(client.get(url), 403, "permission_denied")
    before = Workflow.objects.count()
    assert_error(client.post("/api/workflows", {"manifest": manifest()}, format="json"), 403, "permission_denied")
    assert Workflow.objects.count() == before


def test_session_login_serves_the_browsable_api(member: Any) -> None:
    client = APIClient()
    assert client.login(username=member.username, password="pw-123456")
    response = client.get("/api/workflows", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"<html" in response.content.lower()
    assert client.get("/api/me").json()["username"] == member.username


def test_session_writes_need_the_csrf_token(member: Any) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(member)
    before = Workflow.objects.count()
    response = client.post("/api/workflows", {"manifest": manifest()}, format="json")
    error = assert_error(response, 403, "permission_denied")
    assert "CSRF" in error["message"]
    assert Workflow.objects.count() == before


# --- management commands ------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_commands_create_tenant_user_and_a_working_token(db: Any) -> None:
    assert "newco" in run("mc_tenant", "create", "newco")
    assert Tenant.objects.filter(slug="newco").exists()
    run("mc_user", "create", "bob", "--tenant", "newco", "--role", "author")
    membership = Membership.objects.get(user__username="bob")
    assert (membership.tenant.slug, membership.role) == ("newco", "author")

    raw = run("mc_token", "create", "bob").strip()
    client = token_client(raw)
    me = client.get("/api/me")
    assert me.status_code == 200, me.json()
    assert (me.json()["username"], me.json()["role"], me.json()["tenant"]["slug"]) == ("bob", "author", "newco")
    created = client.post("/api/workflows", {"manifest": manifest()}, format="json")
    assert created.status_code == 201, created.json()

    assert "bob" in run("mc_token", "list", "bob")
    prefix = raw[:10]
    run("mc_token", "revoke", prefix)
    assert ApiToken.objects.get(prefix=prefix).revoked_at is not None
    assert_error(client.get("/api/me"), 401, "authentication_failed")


def test_token_is_stored_only_as_a_hash(db: Any) -> None:
    run("mc_tenant", "create", "newco")
    run("mc_user", "create", "bob", "--tenant", "newco", "--role", "viewer")
    raw = run("mc_token", "create", "bob").strip()
    stored = ApiToken.objects.get(user__username="bob")
    assert raw not in {stored.key_hash, stored.prefix} and len(stored.key_hash) == 64


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("mc_tenant", "create", "acme"), id="duplicate-tenant"),
        pytest.param(("mc_tenant", "create", "Not A Slug"), id="bad-slug"),
        pytest.param(("mc_user", "create", "carol", "--tenant", "nowhere", "--role", "author"), id="unknown-tenant"),
        pytest.param(("mc_user", "create", "dave", "--tenant", "acme", "--role", "emperor"), id="unknown-role"),
        pytest.param(("mc_user", "create", "taken", "--tenant", "acme", "--role", "author"), id="duplicate-user"),
        pytest.param(("mc_token", "create", "nobody"), id="token-for-unknown-user"),
        pytest.param(("mc_token", "revoke", "mc_nomatch"), id="revoke-unknown-prefix"),
        pytest.param(("mc_token", "revoke", "mc_"), id="revoke-ambiguous-prefix"),
    ],
)
def test_commands_refuse_bad_input(tenant: Tenant, args: tuple[str, ...]) -> None:
    taken = UserFactory(username="taken", membership__tenant=tenant, membership__role=Role.VIEWER)
    token_create(user=taken)
    token_create(user=taken)
    users, tenants, tokens = get_user_model().objects.count(), Tenant.objects.count(), ApiToken.objects.count()
    with pytest.raises(CommandError):
        run(*args)
    assert (get_user_model().objects.count(), Tenant.objects.count()) == (users, tenants)
    assert ApiToken.objects.count() == tokens
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()
