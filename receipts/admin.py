from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from receipts.models import Receipt
from receipts.verification import receipt_verify


@admin.register(Receipt)
class ReceiptAdmin(admin.ModelAdmin):
    """Receipts are evidence: operators read and verify them, nobody edits or deletes them."""

    list_display = ["id", "kind", "tenant", "sequence", "signed_at", "key_id", "execution", "created_at"]
    list_filter = ["kind", "tenant", ("signed_at", admin.EmptyFieldListFilter)]
    search_fields = ["id", "subject_digest", "digest", "execution__id", "actor__username"]
    list_select_related = ["tenant", "actor"]
    actions = ["verify"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Verify the selected receipts (signature, chain link, database)")
    def verify(self, request: HttpRequest, queryset: QuerySet[Receipt]) -> None:
        for receipt in queryset:
            verdict = receipt_verify(receipt)
            failed = [f"{check.name}: {check.message}" for check in verdict.checks if not check.ok]
            if failed:
                self.message_user(
                    request, f"receipt #{receipt.sequence} {receipt.pk}: " + "; ".join(failed), messages.ERROR
                )
            else:
                self.message_user(request, f"receipt #{receipt.sequence} {receipt.pk}: verified", messages.SUCCESS)
