"""The engine tests' fixtures (a real worker, publishing workflows), for receipts of real runs."""

from executions.tests.conftest import publish, runner_user, session_worker, worker, worker_log_dir  # noqa: F401
