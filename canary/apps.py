from django.apps import AppConfig


class CanaryConfig(AppConfig):
    name = "canary"
    verbose_name = "Canary releases"

    def ready(self) -> None:
        from canary.metrics import CanaryCollector
        from canary.routing import route_for
        from canary.signals import canary_run_finished
        from executions.routing import router_register
        from executions.signals import execution_finished
        from mc_project.metrics import scrape_collector_register

        execution_finished.connect(canary_run_finished, dispatch_uid="canary-run-finished")
        scrape_collector_register(CanaryCollector())
        router_register(route_for)
