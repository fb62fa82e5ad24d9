from django.urls import path

from policy import apis

urlpatterns = [
    path("policy/decisions", apis.DecisionListApi.as_view(), name="policy-decision-list"),
    path("policy/decisions/<uuid:decision_id>", apis.DecisionDetailApi.as_view(), name="policy-decision-detail"),
    path("policy/bundles", apis.BundleListApi.as_view(), name="policy-bundle-list"),
]
