"""Django settings for Maestro Conductor.

Everything that varies between machines comes from ``MC_*`` variables read in
``mc_project.env``; with none set, MC runs on the embedded default (SQLite and a
filesystem broker under ``var/``). See docs/settings.md for the full table.
"""

from __future__ import annotations

import os
import secrets
import sys

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mc_project.env import BASE_DIR as _BASE_DIR
from mc_project.env import EnvError, read_environment

try:
    ENV = read_environment()
except EnvError as exc:
    raise ImproperlyConfigured(str(exc)) from exc

# `manage.py mc_keys` creates and inspects the signing keys the checks below ask for, so it
# runs without them.
_MANAGING_KEYS = sys.argv[1:2] == ["mc_keys"]
if ENV.is_production and (problems := ENV.production_problems(signing=not _MANAGING_KEYS)):
    raise ImproperlyConfigured("MC_ENV=production refuses to start: " + "; ".join(problems))
if problems := ENV.execution_problems() + ENV.canary_problems() + ([] if _MANAGING_KEYS else ENV.signing_problems()):
    raise ImproperlyConfigured("; ".join(problems))

BASE_DIR = _BASE_DIR
VAR_DIR = ENV.var_dir
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Every process (API, workers, commands) counts its metrics in files under one directory,
# which /metrics sums up. prometheus_client chooses that mode when it is first imported,
# which in every MC process happens after these settings; processes forked later (Celery
# pool processes) inherit the variable. See docs/operations.md.
METRICS_DIR = ENV.metrics_dir
METRICS_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)


def _development_secret_key() -> str:
    """A per-checkout key kept under var/ so sessions survive a restart."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = ENV.secret_key or _development_secret_key()
DEBUG = ENV.debug
ALLOWED_HOSTS = ENV.allowed_hosts
CSRF_TRUSTED_ORIGINS = ENV.csrf_trusted_origins
MC_ENV = ENV.env

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_prometheus",
    "mc_project.tenancy",
    "workflows",
    "executions",
    "policy",
    "receipts",
    "canary",
]

MIDDLEWARE = [
    # First and last, so the request metrics (django_http_*) cover every other middleware.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "mc_project.middleware.RequestPathMiddleware",
    "mc_project.middleware.RequestSizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last before the metrics: its process_exception sees a view's exception first.
    "mc_project.middleware.DependencyOutageMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "mc_project.urls"
WSGI_APPLICATION = "mc_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
_db = dj_database_url.parse(ENV.database_url, conn_max_age=ENV.db_conn_max_age, conn_health_checks=True)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue instead of
    # failing with "database is locked" half-way through a transaction.
    _db["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("OPTIONS", {})["connect_timeout"] = 5
    if ENV.db_pgbouncer:
        # Behind PgBouncer in transaction pooling each transaction may run on a different
        # server connection: nothing may outlive a transaction on the server. A server-side
        # cursor (QuerySet.iterator()) is a named cursor held across fetches, and a prepared
        # statement belongs to the server connection that prepared it. Advisory transaction
        # locks, pipelines and multi-statement queries inside a transaction are fine.
        _db["DISABLE_SERVER_SIDE_CURSORS"] = True
        _db["OPTIONS"].update(prepare_threshold=None, server_side_binding=False)
DATABASES = {"default": _db}
if str(_db.get("ENGINE", "")).endswith("sqlite3"):
    # The embedded default: SQLite has no covering indexes, so Django builds the execution
    # spend index without its INCLUDE column (fine for a demo) and warns about it (models.W040)
    # on every start. Nothing to act on: keep the demo's output clean.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache (throttling); Redis when MC_CACHE_URL is set ---------------------------------
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": ENV.cache_url,
            # The throttle fails open when Redis is down; a blackholed Redis must not hold
            # each request for the kernel's connect timeout first.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
        if ENV.cache_url
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "mc"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
ARTIFACTS_STORAGE: dict[str, object] = (
    {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ENV.artifacts_s3_bucket,
            "location": ENV.artifacts_s3_prefix,
            "endpoint_url": ENV.artifacts_s3_endpoint_url or None,
            "file_overwrite": False,
        },
    }
    if ENV.artifacts_s3_bucket
    else {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": ENV.artifacts_dir}}
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "artifacts": ARTIFACTS_STORAGE,
    # Hashed, compressed files served by WhiteNoise after `collectstatic` in production.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if ENV.is_production
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- request limits -------------------------------------------------------------------
MC_MAX_REQUEST_BYTES = ENV.max_request_bytes
DATA_UPLOAD_MAX_MEMORY_SIZE = MC_MAX_REQUEST_BYTES

# --- API ------------------------------------------------------------------------------
MC_THROTTLE_USER = ENV.throttle_user
MC_THROTTLE_ANON = ENV.throttle_anon
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mc_project.tenancy.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["mc_project.tenancy.permissions.IsTenantMember"],
    "DEFAULT_PARSER_CLASSES": [
        "mc_project.parsers.BoundedJSONParser",
        "mc_project.parsers.ManifestTextParser",
        "mc_project.parsers.ManifestTextXParser",
        "mc_project.parsers.ManifestTextPlainYAMLParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "mc_project.pagination.PageNumberPagination",
    "PAGE_SIZE": ENV.page_size,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": [
        "mc_project.throttling.UserThrottle",
        "mc_project.throttling.AnonThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "mc_project.openapi.McAutoSchema",
    "EXCEPTION_HANDLER": "mc_project.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Maestro Conductor API",
    "DESCRIPTION": "Plan, check, run and prove workflows.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery ---------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = ENV.broker_url
CELERY_RESULT_BACKEND = ENV.result_backend
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem"):
    (BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
        # Poll the folders 10 times a second: each hop of a DAG waits for one poll.
        "polling_interval": 0.1,
    }
if CELERY_BROKER_URL.startswith(("redis", "rediss")):
    # Unacknowledged messages of a worker that died are delivered again after the
    # visibility timeout; sweep for them every MC_BROKER_RESTORE_INTERVAL seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": ENV.broker_visibility_timeout,
        "unacked_restore_interval": ENV.broker_restore_interval,
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A send to a broker that is down gives up within about a second: the step stays waiting to
# be sent (StepRun.send_pending) and the recovery beat sends it once the broker is back.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# One queue per resource class for steps, one for bookkeeping. Step tasks pick their queue
# when they are sent; everything else goes to mc.control.
CELERY_TASK_QUEUES = {
    name: {"routing_key": name} for name in ("mc.small", "mc.medium", "mc.large", "mc.control", "mc.receipts")
}
CELERY_TASK_ROUTES = {"receipts.*": {"queue": "mc.receipts"}}
CELERY_TASK_DEFAULT_QUEUE = "mc.control"
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
# Task events cost a broker publish per task state: off unless asked for. Flower turns
# them on in running workers when it starts (its enable_events broadcast); MC_WORKER_EVENTS
# (or `celery worker -E`) turns them on from the start.
CELERY_WORKER_SEND_TASK_EVENTS = ENV.worker_events
CELERY_TASK_SEND_SENT_EVENT = False
# Celery's Django fixup closes every database connection after every task unless this is
# set (a new PostgreSQL connection per step). Reuse them; mc_project.celery still drops a
# connection that failed or outlived MC_DB_CONN_MAX_AGE before each task.
CELERY_DB_REUSE_MAX = 1000
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BEAT_SCHEDULE = {
    # Finds lost work (dead workers, messages a broker lost, sends that failed) and sends it again.
    "executions-recover-stalled": {
        "task": "executions.recover_stalled",
        "schedule": ENV.recovery_interval,
        "options": {"queue": "mc.control"},
    },
    "receipts-sign-pending": {
        "task": "receipts.sign_pending",
        "schedule": 60.0,
        "options": {"queue": "mc.receipts"},
    },
    # Promotes canaries whose window has passed without a new run, and catches lost messages.
    "canary-analyse-running": {
        "task": "canary.analyse_running",
        "schedule": 15.0,
        "options": {"queue": "mc.control"},
    },
}

# --- execution engine -----------------------------------------------------------------
MC_RETRY_BACKOFF = {
    "base": ENV.retry_backoff_base,
    "factor": ENV.retry_backoff_factor,
    "cap": ENV.retry_backoff_cap,
    "jitter": ENV.retry_jitter,
}
MC_BROKER_VISIBILITY_TIMEOUT = ENV.broker_visibility_timeout
# Lost work is found from what MC knows, not from the broker's visibility timeout
# (docs/reliability.md): each worker writes a heartbeat row; one silent for
# MC_WORKER_LOST_AFTER is lost, and so are its attempts.
MC_WORKER_HEARTBEAT_INTERVAL = ENV.worker_heartbeat_interval
MC_WORKER_LOST_AFTER = ENV.worker_lost_after
MC_RECOVERY_INTERVAL = ENV.recovery_interval
MC_UNSEEN_AFTER = ENV.unseen_after
MC_RECORD_RETRY_INLINE = ENV.record_retry_inline
# Steps off their run's critical path are sent at a lower broker priority; one that has
# waited this long is sent again at the top, so no run starves behind others' critical steps.
MC_PRIORITY_AGING = ENV.priority_aging
MC_STEP_TIMEOUT_GRACE = ENV.step_timeout_grace
MC_OUTPUT_INLINE_LIMIT = ENV.output_inline_limit
MC_STEP_LOG_LIMIT = ENV.step_log_limit
# How often the console's run page polls an unfinished run (ms); not from the environment.
MC_CONSOLE_POLL_MS = 2000
MC_HTTP_ALLOWED_HOSTS = ENV.http_allowed_hosts
MC_PYTHON_ALLOWED_MODULES = ENV.python_allowed_modules

# --- policy ---------------------------------------------------------------------------
# Blank: evaluate the packs in-process (regopy); a URL: ask that OPA server instead.
MC_OPA_URL = ENV.opa_url
MC_POLICY_TIMEOUT = ENV.policy_timeout

# --- receipts: signing (docs/receipts.md) -----------------------------------------------
# "key": an ECDSA P-256 key, from MC_SIGNING_KEY or the keyring in MC_KEYS_DIR (the embedded
# default generates one there on first use); "sigstore": keyless, Fulcio and Rekor.
MC_SIGNER = ENV.signer
MC_SIGNING_KEY = ENV.signing_key
MC_SIGNING_KEY_PASSWORD = ENV.signing_key_password
MC_KEYS_DIR = ENV.keys_dir
MC_SIGSTORE_TRUST_CONFIG = ENV.sigstore_trust_config
MC_SIGSTORE_TRUSTED_ROOT = ENV.sigstore_trusted_root
MC_SIGSTORE_IDENTITY_TOKEN_FILE = ENV.sigstore_identity_token_file
MC_SIGSTORE_IDENTITY = ENV.sigstore_identity
MC_SIGSTORE_ISSUER = ENV.sigstore_issuer

# --- canary releases (docs/canary.md) ---------------------------------------------------
# Blank: the breach webhook (POST /api/canary/webhook) is disabled (503 webhook_disabled).
MC_CANARY_WEBHOOK_SECRET = ENV.canary_webhook_secret
# Off: no new release can start (409 canary_disabled); running ones go on to their end.
MC_CANARY_ENABLED = ENV.canary_enabled
# What a new release gets for each figure its request leaves out (the chart's values.canary.yaml).
MC_CANARY_DEFAULTS = {
    "weight": ENV.canary_weight,
    "max_error_rate_pct": ENV.canary_max_error_rate_pct,
    "max_p95_ms": ENV.canary_max_p95_ms,
    "error_budget_minutes": ENV.canary_error_budget_minutes,
}
# The budget pack's cap on one run's estimated cost, under each tenant's own limit (None: the pack's data.json).
MC_BUDGET_MAX_COST_PER_RUN_USD = ENV.budget_max_cost_per_run_usd

# --- logging --------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": ENV.log_level},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if ENV.is_production:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
