from django.urls import path, register_converter

import workflows.urls  # noqa: F401 - registers the "version" path converter
from executions import apis
from executions.converters import ExecutionRefConverter
from receipts.disclosure_api import ExecutionDisclosureApi as DisclosureApi

register_converter(ExecutionRefConverter, "execution_ref")

# An execution by its id or a unique prefix of it (at least 8 hex digits).
RUN = "executions/<execution_ref:execution_id>"

urlpatterns = [
    path("executions", apis.ExecutionListApi.as_view(), name="execution-list"),
    path(RUN, apis.ExecutionDetailApi.as_view(), name="execution-detail"),
    path(f"{RUN}/cancel", apis.ExecutionCancelApi.as_view(), name="execution-cancel"),
    path(f"{RUN}/progress", apis.ExecutionProgressApi.as_view(), name="execution-progress"),
    path(f"{RUN}/logs", apis.ExecutionLogApi.as_view(), name="execution-logs"),
    path(f"{RUN}/disclosure.tgz", DisclosureApi.as_view(), name="execution-disclosure"),
    path(f"{RUN}/steps", apis.StepListApi.as_view(), name="execution-step-list"),
    path(f"{RUN}/steps/<str:step_id>", apis.StepDetailApi.as_view(), name="execution-step-detail"),
    path(f"{RUN}/steps/<str:step_id>/logs", apis.StepLogApi.as_view(), name="execution-step-logs"),
    path("workflows/<uuid:workflow_id>/versions/<version:version>/plan", apis.PlanApi.as_view(), name="workflow-plan"),
]
