from django.urls import path, re_path

from workflows import apis

urlpatterns = [
    path("workflows", apis.WorkflowListApi.as_view(), name="workflow-list"),
    path("workflows/<uuid:workflow_id>", apis.WorkflowDetailApi.as_view(), name="workflow-detail"),
    path("workflows/<uuid:workflow_id>/draft", apis.DraftApi.as_view(), name="workflow-draft"),
    path("workflows/<uuid:workflow_id>/publish", apis.PublishApi.as_view(), name="workflow-publish"),
    path("workflows/<uuid:workflow_id>/versions", apis.VersionListApi.as_view(), name="workflow-version-list"),
    path(
        "workflows/<uuid:workflow_id>/versions/<str:version>",
        apis.VersionDetailApi.as_view(),
        name="workflow-version-detail",
    ),
    re_path(r"^snapshots/sha256:(?P<digest>[0-9a-f]{64})$", apis.SnapshotApi.as_view(), name="snapshot-detail"),
    path("schemas/manifest.v1.json", apis.ManifestSchemaApi.as_view(), name="manifest-schema"),
    path("manifests/validate", apis.ManifestValidateApi.as_view(), name="manifest-validate"),
]
