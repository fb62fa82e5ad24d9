"""gunicorn settings of the MC API: ``gunicorn -c deploy/gunicorn.conf.py mc_project.wsgi ...``.

Only what the command line cannot say: the metrics files of a worker that exits are
cleaned up (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import os
from typing import Any

from mc_project.env import read_environment

# The arbiter forks the workers, so it chooses prometheus_client's multiprocess mode the
# way they do (mc_project/settings.py), before anything imports prometheus_client.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(read_environment().metrics_dir)


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited (restarted, timed out, killed): drop its live-gauge files."""
    from mc_project.metrics import process_exited

    process_exited(worker.pid)
