"""URL map: the API under /api/, the admin, OpenAPI docs, health probes and /metrics."""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from mc_project import health
from mc_project.fallback import api_fallback
from mc_project.metrics import metrics_export
from mc_project.tenancy.apis import MeApi

api: list[URLPattern | URLResolver] = [
    path("", include("workflows.urls")),
    path("", include("receipts.urls")),
    path("", include("executions.urls")),
    path("", include("policy.urls")),
    path("", include("canary.urls")),
    path("me", MeApi.as_view(), name="me"),
    path("schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="openapi-schema"), name="api-redoc"),
    # Last: a trailing-slash twin of a route is served by it; anything else is a JSON 404.
    re_path(r"^.*$", api_fallback, name="api-fallback"),
]

urlpatterns = [
    path("api/", include(api)),
    re_path(r"^api$", api_fallback),  # /api itself: MC's JSON 404 too
    path("api-auth/", include("rest_framework.urls")),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus text exposition, summed over the files of every process (mc_project.metrics).
    path("metrics", metrics_export, name="prometheus-django-metrics"),
]

handler400 = "mc_project.errors.handler400"
handler403 = "mc_project.errors.handler403"
handler404 = "mc_project.errors.handler404"
handler500 = "mc_project.errors.handler500"
