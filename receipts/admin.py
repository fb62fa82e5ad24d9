from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from receipts.models import Receipt


@admin.register(Receipt)
class ReceiptAdmin(admin.ModelAdmin):
    """Receipts are evidence: operators read them, nobody edits or deletes them."""

    list_display = ["id", "kind", "tenant", "subject_digest", "actor", "created_at"]
    list_filter = ["kind", "tenant"]
    search_fields = ["id", "subject_digest", "actor__username"]
    list_select_related = ["tenant", "actor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
