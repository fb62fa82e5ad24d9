"""Query filters of the receipts API."""

from __future__ import annotations

import django_filters

from receipts.choices import ReceiptKind
from receipts.models import Receipt


class ReceiptFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=ReceiptKind.choices)
    execution = django_filters.UUIDFilter(field_name="execution_id")
    workflow = django_filters.UUIDFilter(field_name="workflow_version__workflow_id")
    signed = django_filters.BooleanFilter(field_name="signed_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Receipt
        fields = ["kind", "execution", "workflow", "signed"]
