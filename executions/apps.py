from django.apps import AppConfig


class ExecutionsConfig(AppConfig):
    name = "executions"
    verbose_name = "Executions"

    def ready(self) -> None:
        from executions.signals import execution_finished
        from mc_project.metrics import execution_finished_counted

        execution_finished.connect(execution_finished_counted, dispatch_uid="metrics-execution-finished")
