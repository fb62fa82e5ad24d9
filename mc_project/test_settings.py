"""Settings for the test suite: PostgreSQL and Redis on localhost unless MC_* says otherwise."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("MC_ENV", "test")
os.environ.setdefault("MC_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mc")
os.environ.setdefault("MC_BROKER_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("MC_RESULT_BACKEND", "redis://127.0.0.1:6379/14")
# Lost work is found in seconds, not a minute, so recovery tests are quick (docs/reliability.md).
os.environ.setdefault("MC_WORKER_HEARTBEAT_INTERVAL", "1")
os.environ.setdefault("MC_WORKER_LOST_AFTER", "5")
os.environ.setdefault("MC_UNSEEN_AFTER", "3")
os.environ.setdefault("MC_RECORD_RETRY_INLINE", "3")
# Keep test files (tokens, keys) apart from the developer's demo under var/.
os.environ.setdefault("MC_VAR_DIR", str(Path(__file__).resolve().parent.parent / "var" / "test"))
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    # Metrics files of this test run and the processes it starts (they inherit the
    # variable), apart from other runs on the machine; removed when the run ends.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mc-test-metrics-")
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
if "MC_KEYS_DIR" not in os.environ:
    # Receipt signing keys: generated on first use, once per test run (and shared with the
    # processes it starts), removed when the run ends.
    os.environ["MC_KEYS_DIR"] = tempfile.mkdtemp(prefix="mc-test-keys-")
    atexit.register(shutil.rmtree, os.environ["MC_KEYS_DIR"], ignore_errors=True)

from mc_project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests

# Under ``pytest -n N`` each xdist worker has its own database (test_mc_gw0, ...); its
# Celery workers must not take another one's messages from the shared Redis database, so
# each keeps its queues and results under a prefix of its own.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _XDIST_WORKER and CELERY_BROKER_URL.startswith("redis"):  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": f"{_XDIST_WORKER}:"}  # noqa: F405
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"{_XDIST_WORKER}:"}
