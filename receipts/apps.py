from typing import Any

from django.apps import AppConfig


class ReceiptsConfig(AppConfig):
    name = "receipts"
    verbose_name = "Receipts"

    def ready(self) -> None:
        from executions.signals import execution_finished

        execution_finished.connect(_execution_finished, dispatch_uid="receipts-execution-finished")


def _execution_finished(execution: Any, **_: Any) -> None:
    """Every finished run gets a receipt: the row now, in the run's transaction; signed after commit."""
    from receipts.services import execution_record_create

    execution_record_create(execution)
