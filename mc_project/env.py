"""The one place that reads MC's environment.

Every setting that comes from the environment has an ``MC_`` name and a default for the
embedded mode (SQLite and a filesystem broker under ``var/``). Production secrets have no
default: ``production_problems`` lists what is missing so settings can refuse to start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class EnvError(ValueError):
    """An ``MC_*`` variable holds a value MC cannot use."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
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


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
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

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def production_problems(self) -> list[str]:
        """What stops this environment from running as production (empty if fine)."""
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
    )
