from django.urls import path

import workflows.urls  # noqa: F401 - registers the "version" path converter
from executions import apis
from receipts.disclosure_api import ExecutionDisclosureApi as DisclosureApi

urlpatterns = [
    path("executions", apis.ExecutionListApi.as_view(), name="execution-list"),
    path("executions/<uuid:execution_id>", apis.ExecutionDetailApi.as_view(), name="execution-detail"),
    path("executions/<uuid:execution_id>/cancel", apis.ExecutionCancelApi.as_view(), name="execution-cancel"),
    path("executions/<uuid:execution_id>/progress", apis.ExecutionProgressApi.as_view(), name="execution-progress"),
    path("executions/<uuid:execution_id>/logs", apis.ExecutionLogApi.as_view(), name="execution-logs"),
    path("executions/<uuid:execution_id>/disclosure.tgz", DisclosureApi.as_view(), name="execution-disclosure"),
    path("executions/<uuid:execution_id>/steps", apis.StepListApi.as_view(), name="execution-step-list"),
    path(
        "executions/<uuid:execution_id>/steps/<str:step_id>", apis.StepDetailApi.as_view(), name="execution-step-detail"
    ),
    path(
        "executions/<uuid:execution_id>/steps/<str:step_id>/logs", apis.StepLogApi.as_view(), name="execution-step-logs"
    ),
    path("workflows/<uuid:workflow_id>/versions/<version:version>/plan", apis.PlanApi.as_view(), name="workflow-plan"),
]
