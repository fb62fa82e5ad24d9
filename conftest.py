"""Fixtures shared by every test package: tenants, users of each role, token-authenticated clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Tenant
from mc_project.tenancy.services import token_create
from tests.factories import TenantFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_policy_caches() -> None:
    """Rows a rolled-back test created must not outlive it in the per-process policy caches."""
    from policy.services import policy_caches_clear

    policy_caches_clear()


@pytest.fixture
def tenant(db: Any) -> Tenant:
    return TenantFactory(slug="acme")


@pytest.fixture
def other_tenant(db: Any) -> Tenant:
    return TenantFactory(slug="globex")


@pytest.fixture
def make_client(db: Any) -> Callable[..., APIClient]:
    """``make_client(role, tenant)``: an API client signed in with a real token of a new user."""

    def make(role: str = Role.ADMIN, tenant: Tenant | None = None) -> APIClient:
        user = UserFactory(membership__tenant=tenant or TenantFactory(), membership__role=role)
        _, raw = token_create(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def author(make_client: Callable[..., APIClient], tenant: Tenant) -> APIClient:
    return make_client(Role.AUTHOR, tenant)


@pytest.fixture
def publisher(make_client: Callable[..., APIClient], tenant: Tenant) -> APIClient:
    return make_client(Role.PUBLISHER, tenant)


@pytest.fixture
def viewer(make_client: Callable[..., APIClient], tenant: Tenant) -> APIClient:
    return make_client(Role.VIEWER, tenant)


@pytest.fixture
def outsider(make_client: Callable[..., APIClient], other_tenant: Tenant) -> APIClient:
    """An admin of another tenant: must see none of ``tenant``'s objects."""
    return make_client(Role.ADMIN, other_tenant)
