from django.urls import path

from canary import apis

urlpatterns = [
    path("canaries", apis.CanaryListApi.as_view(), name="canary-list"),
    path("canaries/<int:release_id>", apis.CanaryDetailApi.as_view(), name="canary-detail"),
    path("canaries/<int:release_id>/pause", apis.CanaryPauseApi.as_view(), name="canary-pause"),
    path("canaries/<int:release_id>/resume", apis.CanaryResumeApi.as_view(), name="canary-resume"),
    path("canaries/<int:release_id>/promote", apis.CanaryPromoteApi.as_view(), name="canary-promote"),
    path("canaries/<int:release_id>/rollback", apis.CanaryRollbackApi.as_view(), name="canary-rollback"),
    path("canaries/<int:release_id>/analyse", apis.CanaryAnalyseApi.as_view(), name="canary-analyse"),
    path("canaries/<int:release_id>/events", apis.CanaryEventListApi.as_view(), name="canary-events"),
    path("canary/webhook", apis.CanaryWebhookApi.as_view(), name="canary-webhook"),
]
