"""Writes for tenants, members and tokens."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from mc_project.errors import Conflict, ValidationFailed
from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import TOKEN_PREFIX, ApiToken, Membership, Tenant, token_hash


@transaction.atomic
def tenant_create(*, slug: str, name: str = "") -> Tenant:
    """Create a tenant; its slug is unique."""
    if Tenant.objects.filter(slug=slug).exists():
        raise Conflict(f"Tenant {slug!r} already exists.", code="tenant_exists")
    tenant = Tenant(slug=slug, name=name or slug)
    tenant.full_clean()
    tenant.save()
    return tenant


@transaction.atomic
def user_create(
    *, username: str, tenant: Tenant, role: str, password: str | None = None, email: str = "", staff: bool = False
) -> User:
    """Create a user who belongs to ``tenant`` with ``role``."""
    if role not in Role.values:
        raise ValidationFailed(f"Unknown role {role!r}; one of {', '.join(Role.values)}.", code="invalid_role")
    if User.objects.filter(username=username).exists():
        raise Conflict(f"User {username!r} already exists.", code="user_exists")
    user = User.objects.create_user(username=username, email=email, password=password)
    if staff:
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


def token_create(*, user: User, name: str = "default", expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Issue a token; returns the row and the raw value, which is never stored."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=raw[:10], key_hash=token_hash(raw), expires_at=expires_at
    )
    return token, raw


def token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
