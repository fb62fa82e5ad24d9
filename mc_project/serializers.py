"""Serializer pieces shared by every app."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """An input serializer that refuses keys it does not know, instead of ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: [f"unknown field {key!r}"] for key in unknown})
        return super().to_internal_value(data)


class ErrorDetailOutput(serializers.Serializer):
    path = serializers.CharField()
    message = serializers.CharField()


class ErrorBodyOutput(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = ErrorDetailOutput(many=True)


class ErrorOutput(serializers.Serializer):
    """The one error shape, for the OpenAPI schema."""

    error = ErrorBodyOutput()
