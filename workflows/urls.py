from django.urls import path, re_path, register_converter

from workflows import apis


class VersionConverter:
    """A semver-shaped path segment; anything else is a 404 before it reaches the database."""

    regex = r"[0-9A-Za-z.+-]{1,128}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(VersionConverter, "version")

urlpatterns = [
    path("workflows", apis.WorkflowListApi.as_view(), name="workflow-list"),
    path("workflows/<uuid:workflow_id>", apis.WorkflowDetailApi.as_view(), name="workflow-detail"),
    path("workflows/<uuid:workflow_id>/draft", apis.DraftApi.as_view(), name="workflow-draft"),
    path("workflows/<uuid:workflow_id>/publish", apis.PublishApi.as_view(), name="workflow-publish"),
    path("workflows/<uuid:workflow_id>/versions", apis.VersionListApi.as_view(), name="workflow-version-list"),
    path(
        "workflows/<uuid:workflow_id>/versions/<version:version>",
        apis.VersionDetailApi.as_view(),
        name="workflow-version-detail",
    ),
    re_path(r"^snapshots/sha256:(?P<digest>[0-9a-f]{64})$", apis.SnapshotApi.as_view(), name="snapshot-detail"),
    path("schemas/manifest.v1.json", apis.ManifestSchemaApi.as_view(), name="manifest-schema"),
    path("manifests/validate", apis.ManifestValidateApi.as_view(), name="manifest-validate"),
    path("manifests/plan", apis.ManifestPlanApi.as_view(), name="manifest-plan"),
]
