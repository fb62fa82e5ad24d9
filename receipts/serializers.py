from rest_framework import serializers

from receipts.models import Receipt


class ReceiptOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    signed = serializers.BooleanField(read_only=True)

    class Meta:
        model = Receipt
        fields = ["id", "kind", "subject_digest", "actor", "created_at", "signed", "record", "envelope"]
