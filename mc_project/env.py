"""The one place that reads MC's environment.

Every setting that comes from the environment has an ``MC_`` name (one exception:
prometheus_client's own ``PROMETHEUS_MULTIPROC_DIR``) and a default for the
embedded mode (SQLite and a filesystem broker under ``var/``). Production secrets have no
default: ``production_problems`` lists what is missing so settings can refuse to start.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

# receipts.signing.keyring's index file: its presence means a keyring has been created.
KEYRING_INDEX = "keyring.json"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class EnvError(ValueError):
    """An ``MC_*`` variable holds a value MC cannot use."""


def _raw(name: str) -> str | None:
    """The variable's value, or None when it is unset or blank (``MC_X=`` means "the default")."""
    raw = os.environ.get(name)
    return raw if raw is not None and raw.strip() else None


def env_str(name: str, default: str = "") -> str:
    raw = _raw(name)
    return default if raw is None else raw.strip()


def env_bool(name: str, default: bool) -> bool:
    raw = _raw(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise EnvError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise EnvError(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise EnvError(f"{name} must be a number, got {raw!r}") from None


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds: a finite number above 0."""
    value = env_float(name, default)
    if not (math.isfinite(value) and value > 0):
        raise EnvError(f"{name} must be a number of seconds above 0, got {os.environ.get(name)!r}")
    return value


def env_http_url(name: str) -> str:
    """An ``http://`` or ``https://`` URL without its trailing slash, or "" when unset."""
    raw = env_str(name)
    value = raw.rstrip("/")
    if value and not _is_http_url(value):
        raise EnvError(f"{name} must be an http:// or https:// URL, got {raw!r}")
    return value


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError when the port is not a number up to 65535
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname) and port != 0


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower()
    if value not in choices:
        raise EnvError(f"{name} must be one of {', '.join(choices)}, got {os.environ.get(name)!r}")
    return value


def env_secret(name: str) -> str:
    """A secret exactly as given (no stripping: spaces may be part of a password), or ""."""
    return _raw(name) or ""


def env_path(name: str) -> Path | None:
    raw = env_str(name)
    return Path(raw) if raw else None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = _raw(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


@dataclass(frozen=True)
class Environment:
    """The parsed ``MC_*`` environment, with embedded-mode defaults."""

    env: str
    var_dir: Path
    secret_key: str
    debug: bool
    allowed_hosts: list[str]
    csrf_trusted_origins: list[str]
    database_url: str
    broker_url: str
    result_backend: str
    cache_url: str
    log_level: str
    max_request_bytes: int
    throttle_user: str
    throttle_anon: str
    page_size: int
    db_conn_max_age: int
    db_pgbouncer: bool
    broker_visibility_timeout: int
    broker_restore_interval: int
    worker_heartbeat_interval: float
    worker_lost_after: float
    recovery_interval: float
    unseen_after: float
    record_retry_inline: float
    priority_aging: float
    worker_events: bool
    retry_backoff_base: float
    retry_backoff_factor: float
    retry_backoff_cap: float
    retry_jitter: float
    step_timeout_grace: int
    output_inline_limit: int
    step_log_limit: int
    http_allowed_hosts: list[str]
    python_allowed_modules: list[str]
    artifacts_dir: Path
    artifacts_s3_bucket: str
    artifacts_s3_prefix: str
    artifacts_s3_endpoint_url: str
    opa_url: str
    policy_timeout: float
    metrics_dir: Path
    signer: str
    signing_key: Path | None
    signing_key_password: str
    keys_dir: Path
    sigstore_trust_config: Path | None
    sigstore_trusted_root: Path | None
    sigstore_identity_token_file: Path | None
    sigstore_identity: str
    sigstore_issuer: str
    canary_webhook_secret: str
    canary_enabled: bool
    canary_weight: int
    canary_max_error_rate_pct: float
    canary_max_p95_ms: int
    canary_error_budget_minutes: int
    budget_max_cost_per_run_usd: float | None

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def production_problems(self, *, signing: bool = True) -> list[str]:
        """What stops this environment from running as production (empty if fine).

        ``signing=False`` leaves out the signing key, for the command that creates it.
        """
        problems = []
        if not self.secret_key:
            problems.append("MC_SECRET_KEY is not set")
        if self.debug:
            problems.append("MC_DEBUG must be off")
        if not self.database_url or self.database_url.startswith("sqlite"):
            problems.append("MC_DATABASE_URL must name a real database (PostgreSQL)")
        if not self.allowed_hosts or "*" in self.allowed_hosts:
            problems.append("MC_ALLOWED_HOSTS must list the served host names")
        if not self.broker_url or self.broker_url.startswith("filesystem"):
            problems.append("MC_BROKER_URL must name a real broker (Redis or RabbitMQ)")
        problems.extend(self.execution_problems())
        if signing:
            problems.extend(self.production_signing_problems())
        return problems

    def production_signing_problems(self) -> list[str]:
        """What stops production from signing receipts: a key, or a Sigstore identity, must exist
        before the first one (the embedded default generates a key on first use instead)."""
        if self.signer == "sigstore":
            # Receipts verify against this certificate identity and OIDC issuer.
            policy = (("MC_SIGSTORE_IDENTITY", self.sigstore_identity), ("MC_SIGSTORE_ISSUER", self.sigstore_issuer))
            missing = [name for name, value in policy if not value]
            if missing:
                return [f"MC_SIGNER=sigstore needs {' and '.join(missing)}: whose signatures receipts must carry"]
            return []
        if self.signing_key is None and not (self.keys_dir / KEYRING_INDEX).is_file():
            return [
                f"no signing key: set MC_SIGNING_KEY to a PEM private key, or create a keyring in {self.keys_dir}"
                " (manage.py mc_keys generate)"
            ]
        return []

    def signing_problems(self) -> list[str]:
        """Signing settings that cannot work (checked in every mode)."""
        problems = []
        if self.signing_key is not None:
            try:
                head = self.signing_key.read_bytes()[:4096]
            except OSError as exc:
                return [f"MC_SIGNING_KEY {self.signing_key} cannot be read: {exc.strerror}"]
            if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in head and not self.signing_key_password:
                problems.append(f"MC_SIGNING_KEY {self.signing_key} is encrypted: set MC_SIGNING_KEY_PASSWORD")
            elif b"-----BEGIN PRIVATE KEY-----" not in head:  # not "EC PRIVATE KEY" (SEC1), which MC cannot load
                problems.append(f"MC_SIGNING_KEY {self.signing_key} is not a PEM private key (PKCS#8)")
        for name, path in (
            ("MC_SIGSTORE_TRUST_CONFIG", self.sigstore_trust_config),
            ("MC_SIGSTORE_TRUSTED_ROOT", self.sigstore_trusted_root),
        ):
            if path is not None and not path.is_file():
                problems.append(f"{name} {path} is not a file")
        return problems

    def canary_problems(self) -> list[str]:
        """Canary and budget defaults out of their range (checked in every mode)."""
        problems = []
        if not 0 <= self.canary_weight <= 100:
            problems.append("MC_CANARY_WEIGHT must be a percent, 0 to 100")
        if not 0 <= self.canary_max_error_rate_pct <= 100:
            problems.append("MC_CANARY_MAX_ERROR_RATE_PCT must be a percent, 0 to 100")
        if self.canary_max_p95_ms < 1:
            problems.append("MC_CANARY_MAX_P95_MS must be at least 1")
        if self.canary_error_budget_minutes < 0:
            problems.append("MC_CANARY_ERROR_BUDGET_MINUTES must be 0 or more")
        cost = self.budget_max_cost_per_run_usd
        if cost is not None and not (math.isfinite(cost) and cost > 0):
            problems.append("MC_BUDGET_MAX_COST_PER_RUN_USD must be a number of dollars above 0")
        return problems

    def execution_problems(self) -> list[str]:
        """Settings of the execution engine that contradict each other (checked in every mode)."""
        problems = []
        if self.retry_backoff_cap >= self.broker_visibility_timeout:
            # A countdown beyond the Redis visibility timeout is delivered twice.
            problems.append("MC_RETRY_BACKOFF_CAP must be below MC_BROKER_VISIBILITY_TIMEOUT")
        if self.retry_backoff_base <= 0 or self.retry_backoff_factor < 1:
            problems.append("MC_RETRY_BACKOFF_BASE must be > 0 and MC_RETRY_BACKOFF_FACTOR >= 1")
        if not 0 <= self.retry_jitter < 1:
            problems.append("MC_RETRY_JITTER must be in [0, 1)")
        if self.worker_lost_after < 3 * self.worker_heartbeat_interval:
            # A worker that misses two heartbeats in a row (a slow database) is not lost.
            problems.append("MC_WORKER_LOST_AFTER must be at least 3 x MC_WORKER_HEARTBEAT_INTERVAL")
        return problems


def read_environment() -> Environment:
    """Read every ``MC_*`` variable once."""
    env = env_str("MC_ENV", "development").lower()
    if env not in {"development", "test", "production"}:
        raise EnvError(f"MC_ENV must be development, test or production, got {env!r}")
    production = env == "production"
    var_dir = Path(env_str("MC_VAR_DIR") or BASE_DIR / "var")
    return Environment(
        env=env,
        var_dir=var_dir,
        secret_key=env_str("MC_SECRET_KEY"),
        debug=env_bool("MC_DEBUG", not production),
        allowed_hosts=env_list(
            "MC_ALLOWED_HOSTS", [] if production else ["localhost", "127.0.0.1", "[::1]", "testserver"]
        ),
        csrf_trusted_origins=env_list("MC_CSRF_TRUSTED_ORIGINS", []),
        database_url=env_str("MC_DATABASE_URL", "" if production else f"sqlite:///{var_dir / 'mc.sqlite3'}"),
        broker_url=env_str("MC_BROKER_URL", "" if production else "filesystem://"),
        result_backend=env_str("MC_RESULT_BACKEND", "django-db"),
        cache_url=env_str("MC_CACHE_URL"),
        log_level=env_str("MC_LOG_LEVEL", "INFO").upper(),
        max_request_bytes=env_int("MC_MAX_REQUEST_BYTES", 1024 * 1024 + 64 * 1024),
        throttle_user=env_str("MC_THROTTLE_USER", "1200/min"),
        throttle_anon=env_str("MC_THROTTLE_ANON", "60/min"),
        page_size=env_int("MC_PAGE_SIZE", 50),
        db_conn_max_age=env_int("MC_DB_CONN_MAX_AGE", 60),
        db_pgbouncer=env_bool("MC_DB_PGBOUNCER", False),
        broker_visibility_timeout=env_int("MC_BROKER_VISIBILITY_TIMEOUT", 3600),
        broker_restore_interval=env_int("MC_BROKER_RESTORE_INTERVAL", 60),
        worker_heartbeat_interval=env_seconds("MC_WORKER_HEARTBEAT_INTERVAL", 5.0),
        worker_lost_after=env_seconds("MC_WORKER_LOST_AFTER", 60.0),
        recovery_interval=env_seconds("MC_RECOVERY_INTERVAL", 10.0),
        unseen_after=env_seconds("MC_UNSEEN_AFTER", 20.0),
        record_retry_inline=env_seconds("MC_RECORD_RETRY_INLINE", 10.0),
        priority_aging=env_seconds("MC_PRIORITY_AGING", 30.0),
        worker_events=env_bool("MC_WORKER_EVENTS", False),
        retry_backoff_base=env_float("MC_RETRY_BACKOFF_BASE", 1.0),
        retry_backoff_factor=env_float("MC_RETRY_BACKOFF_FACTOR", 2.0),
        retry_backoff_cap=env_float("MC_RETRY_BACKOFF_CAP", 300.0),
        retry_jitter=env_float("MC_RETRY_JITTER", 0.25),
        step_timeout_grace=env_int("MC_STEP_TIMEOUT_GRACE", 10),
        output_inline_limit=env_int("MC_OUTPUT_INLINE_LIMIT", 64 * 1024),
        step_log_limit=env_int("MC_STEP_LOG_LIMIT", 64 * 1024),
        http_allowed_hosts=env_list("MC_HTTP_ALLOWED_HOSTS", []),
        python_allowed_modules=env_list("MC_PYTHON_ALLOWED_MODULES", ["executions.packages.samples"]),
        artifacts_dir=Path(env_str("MC_ARTIFACTS_DIR") or var_dir / "artifacts"),
        artifacts_s3_bucket=env_str("MC_ARTIFACTS_S3_BUCKET"),
        artifacts_s3_prefix=env_str("MC_ARTIFACTS_S3_PREFIX", "artifacts"),
        artifacts_s3_endpoint_url=env_str("MC_ARTIFACTS_S3_ENDPOINT_URL"),
        opa_url=env_http_url("MC_OPA_URL"),
        policy_timeout=env_seconds("MC_POLICY_TIMEOUT", 2.0),
        # prometheus_client's own variable: every process of one deployment (API and
        # workers) must count into the same directory, so it may be set for all of them.
        metrics_dir=Path(env_str("PROMETHEUS_MULTIPROC_DIR") or var_dir / "prometheus"),
        signer=env_choice("MC_SIGNER", "key", ("key", "sigstore")),
        signing_key=env_path("MC_SIGNING_KEY"),
        signing_key_password=env_secret("MC_SIGNING_KEY_PASSWORD"),
        keys_dir=Path(env_str("MC_KEYS_DIR") or var_dir / "keys"),
        sigstore_trust_config=env_path("MC_SIGSTORE_TRUST_CONFIG"),
        sigstore_trusted_root=env_path("MC_SIGSTORE_TRUSTED_ROOT"),
        sigstore_identity_token_file=env_path("MC_SIGSTORE_IDENTITY_TOKEN_FILE"),
        sigstore_identity=env_str("MC_SIGSTORE_IDENTITY"),
        sigstore_issuer=env_str("MC_SIGSTORE_ISSUER"),
        canary_webhook_secret=env_secret("MC_CANARY_WEBHOOK_SECRET"),
        # Defaults of a new canary release (canary/choices.py has the same figures, the
        # sprint plan's helm values): the chart's values.canary.yaml sets them.
        canary_enabled=env_bool("MC_CANARY_ENABLED", True),
        canary_weight=env_int("MC_CANARY_WEIGHT", 10),
        canary_max_error_rate_pct=env_float("MC_CANARY_MAX_ERROR_RATE_PCT", 1.0),
        canary_max_p95_ms=env_int("MC_CANARY_MAX_P95_MS", 900),
        canary_error_budget_minutes=env_int("MC_CANARY_ERROR_BUDGET_MINUTES", 30),
        budget_max_cost_per_run_usd=(
            env_float("MC_BUDGET_MAX_COST_PER_RUN_USD", 0.0) if _raw("MC_BUDGET_MAX_COST_PER_RUN_USD") else None
        ),
    )
