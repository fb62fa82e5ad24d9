"""Reads about who the caller is."""

from __future__ import annotations

from typing import Any

from mc_project.errors import Forbidden
from mc_project.tenancy.models import Membership, Tenant


def membership_for_user(user: Any) -> Membership | None:
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        return user.membership  # type: ignore[no-any-return]
    except Membership.DoesNotExist:
        return None


def tenant_for_user(user: Any) -> Tenant:
    """The caller's tenant; a user without one may not use the API."""
    membership = membership_for_user(user)
    if membership is None:
        raise Forbidden("This account belongs to no tenant.", code="no_tenant")
    return membership.tenant
