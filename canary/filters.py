"""Query filters of the canary API."""

from __future__ import annotations

import django_filters

from canary.choices import CanaryState, CanaryStrategy
from canary.models import CanaryRelease


class CanaryFilter(django_filters.FilterSet):
    workflow = django_filters.UUIDFilter(field_name="workflow_id")
    workflow_name = django_filters.CharFilter(field_name="workflow__name")
    state = django_filters.MultipleChoiceFilter(choices=CanaryState.choices)
    strategy = django_filters.ChoiceFilter(choices=CanaryStrategy.choices)

    class Meta:
        model = CanaryRelease
        fields = ["workflow", "workflow_name", "state", "strategy"]
