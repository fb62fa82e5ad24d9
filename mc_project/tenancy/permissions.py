"""Permissions: the caller must belong to a tenant, and hold the role the action needs.

A view states the least role per HTTP method in ``required_roles`` (reads default to
viewer); roles are ordered viewer < author < publisher < operator < admin.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from mc_project.tenancy.choices import Role, role_at_least
from mc_project.tenancy.selectors import membership_for_user


class IsTenantMember(BasePermission):
    message = "This account belongs to no tenant, or lacks the role for this action."

    def has_permission(self, request: Any, view: Any) -> bool:
        membership = membership_for_user(request.user)
        if membership is None:
            return False
        if not hasattr(view, request.method.lower()):
            return True  # no such method here: let the view answer 405, not a misleading 403
        needed = required_role(view, request.method)
        if not role_at_least(membership.role, needed):
            self.message = f"This action needs the {needed} role; you are {membership.role}."
            return False
        return True


def required_role(view: Any, method: str) -> str:
    roles: dict[str, str] = getattr(view, "required_roles", {})
    if method in roles:
        return roles[method]
    return Role.VIEWER if method in SAFE_METHODS else Role.ADMIN
