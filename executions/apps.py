from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        from executions.metrics import ScaleCollector
        from executions.signals import execution_finished
        from mc_project.metrics import execution_finished_counted, scrape_collector_register

        execution_finished.connect(execution_finished_counted, dispatch_uid="metrics-execution-finished")
        scrape_collector_register(ScaleCollector())
