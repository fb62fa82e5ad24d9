from rest_framework import serializers

from receipts.models import Receipt


class ReceiptOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    signed = serializers.BooleanField(read_only=True)

    class Meta:
        model = Receipt
        fields = [
            "id",
            "kind",
            "subject_digest",
            "execution",
            "actor",
            "created_at",
            "signed",
            "signed_at",
            "sequence",
            "digest",
            "previous_digest",
            "key_id",
            "record",
            "envelope",
        ]


class CheckOutput(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    message = serializers.CharField()


class VerdictOutput(serializers.Serializer):
    receipt = serializers.CharField()
    ok = serializers.BooleanField()
    checks = CheckOutput(many=True)


class ChainVerdictOutput(serializers.Serializer):
    tenant = serializers.CharField()
    ok = serializers.BooleanField()
    receipts = serializers.IntegerField()
    problems = serializers.ListField(child=serializers.CharField())
