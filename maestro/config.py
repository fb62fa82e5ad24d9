"""Where the CLI finds its server and token: the environment first, then the config file.

``MAESTRO_URL`` and ``MAESTRO_TOKEN`` win over the file ``maestro login`` writes
(``$MAESTRO_CONFIG``, default ``$XDG_CONFIG_HOME/maestro/config.json``), which holds a
token and so is written with mode 0600.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from maestro.errors import Unreachable

ENV_URL = "MAESTRO_URL"
ENV_TOKEN = "MAESTRO_TOKEN"  # noqa: S105 - the variable's name, not a secret
ENV_CONFIG = "MAESTRO_CONFIG"


@dataclass(frozen=True)
class Config:
    """The server to talk to and the API token to talk with."""

    url: str
    token: str


def config_path() -> Path:
    """The config file's path (it may not exist)."""
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "maestro" / "config.json"


def _read_file(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise Unreachable(f"cannot read the config file {path}: {exc}", code="config_unreadable") from exc
    return {key: value for key, value in data.items() if isinstance(value, str)} if isinstance(data, dict) else {}


def config_load() -> Config:
    """The configuration in force; raises Unreachable (exit 3) if the URL or the token is missing."""
    stored = _read_file(config_path())
    url = os.environ.get(ENV_URL) or stored.get("url", "")
    token = os.environ.get(ENV_TOKEN) or stored.get("token", "")
    if not url or not token:
        missing = " and ".join(name for name, value in ((ENV_URL, url), (ENV_TOKEN, token)) if not value)
        raise Unreachable(f"not configured: set {missing}, or run `maestro login`", code="not_configured")
    return Config(url=url.rstrip("/"), token=token)


def config_save(config: Config) -> Path:
    """Write the config file with mode 0600 (created so, never readable by others in between)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": config.url.rstrip("/"), "token": config.token}, handle, indent=2)
        handle.write("\n")
    return path
