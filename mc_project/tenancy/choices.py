"""Roles, from least to most powerful; each role may do everything the ones before it may."""

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    AUTHOR = "author", "Author"
    PUBLISHER = "publisher", "Publisher"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


ROLE_RANK: dict[str, int] = {role.value: rank for rank, role in enumerate(Role)}


def role_at_least(role: str, minimum: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[minimum]
