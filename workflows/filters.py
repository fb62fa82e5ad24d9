"""Query filters of the workflows API."""

from __future__ import annotations

import django_filters
from django.db.models import Exists, OuterRef, QuerySet

from workflows.choices import VersionState
from workflows.models import Workflow, WorkflowVersion


class WorkflowFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(field_name="name")
    search = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    state = django_filters.ChoiceFilter(
        choices=VersionState.choices, method="filter_state", label="Has a version in this state"
    )

    class Meta:
        model = Workflow
        fields = ["name", "search", "state"]

    def filter_state(self, queryset: QuerySet[Workflow], name: str, value: str) -> QuerySet[Workflow]:
        return queryset.filter(Exists(WorkflowVersion.objects.filter(workflow=OuterRef("pk"), state=value)))


class VersionFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=VersionState.choices)

    class Meta:
        model = WorkflowVersion
        fields = ["state"]
