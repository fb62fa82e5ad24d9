from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "mc_project.tenancy"
    label = "tenancy"
    verbose_name = "Tenants and access"
