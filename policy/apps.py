from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class PolicyConfig(AppConfig):
    name = "policy"
    verbose_name = "Policy"

    def ready(self) -> None:
        from policy.models import PolicyBundle, TenantPolicy
        from policy.services import policy_caches_clear

        for model in (PolicyBundle, TenantPolicy):
            post_save.connect(policy_caches_clear, sender=model, dispatch_uid=f"policy-cache-{model.__name__}")
            post_delete.connect(policy_caches_clear, sender=model, dispatch_uid=f"policy-cache-del-{model.__name__}")
