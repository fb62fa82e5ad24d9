"""Query filters of the executions API."""

from __future__ import annotations

import django_filters

from executions.choices import ExecutionMode, ExecutionStatus
from executions.models import Execution
from mc_project.filters import UTCIsoDateTimeFilter


class ExecutionFilter(django_filters.FilterSet):
    workflow = django_filters.UUIDFilter(field_name="workflow_id")
    workflow_name = django_filters.CharFilter(field_name="workflow__name")
    version = django_filters.CharFilter(field_name="workflow_version__version")
    status = django_filters.MultipleChoiceFilter(choices=ExecutionStatus.choices)
    mode = django_filters.ChoiceFilter(choices=ExecutionMode.choices)
    created_after = UTCIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Execution
        fields = ["workflow", "workflow_name", "version", "status", "mode", "created_after", "created_before"]
