"""Factories for test objects, built through MC's services where a service exists."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model

from mc_project.tenancy.choices import Role
from mc_project.tenancy.models import Membership, Tenant


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-123456")

    @factory.post_generation
    def membership(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and kwargs.get("tenant") is not None:
            Membership.objects.create(user=self, tenant=kwargs["tenant"], role=kwargs.get("role", Role.VIEWER))
        if create:
            self.save()


def manifest(name: str = "hello-world", version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    """A small valid manifest: a diamond DAG of echo steps."""
    doc: dict[str, Any] = {
        "name": name,
        "version": version,
        "description": "A test workflow",
        "tasks": [
            {"id": "fetch", "uses": "pkg:mc/echo@1", "with": {"message": "fetch"}},
            {"id": "left", "uses": "pkg:mc/echo@1", "with": {"message": "left"}, "needs": ["fetch"]},
            {"id": "right", "uses": "pkg:mc/echo@1", "with": {"message": "right"}, "needs": ["fetch"]},
            {"id": "report", "uses": "pkg:mc/echo@1", "with": {"message": "done"}, "needs": ["left", "right"]},
        ],
    }
    doc.update(extra)
    return doc
