"""A CycloneDX 1.6 SBOM of the Python environment MC runs in, made once per deployment.

``cyclonedx-py environment`` (package cyclonedx-bom) takes several seconds, so its JSON is
kept under ``<MC_VAR_DIR>/sbom/`` in a file named after a fingerprint of the installed
distributions: it is made at first use (or ahead of time by ``mc_disclosure sbom``, e.g. at
deploy) and made again only when the installed packages change. A file lock makes
concurrent first uses, in one process or several, wait for one generation instead of each
starting their own.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

SPEC_VERSION = "1.6"
GENERATE_TIMEOUT_S = 120.0
_lock = threading.Lock()


class SbomUnavailable(RuntimeError):
    """cyclonedx-py could not describe the environment (not installed, failed or too slow)."""


@functools.cache
def environment_fingerprint() -> str:
    """sha256 hex of the interpreter and every installed distribution's name and version.

    Cached per process: a deployment that changes its packages restarts its processes.
    """
    names = sorted(
        f"{(dist.metadata['Name'] or '').lower()}=={dist.version}" for dist in importlib.metadata.distributions()
    )
    listing = "\n".join([sys.version, sys.prefix, *names])
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def sbom_path() -> Path:
    """Where this environment's SBOM is (or will be) kept."""
    return Path(settings.VAR_DIR) / "sbom" / f"{environment_fingerprint()[:32]}.cdx.json"


def sbom_json() -> bytes:
    """The environment's SBOM as CycloneDX 1.6 JSON: the cached file, generated first if missing."""
    path = sbom_path()
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, open(path.with_suffix(".lock"), "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # another process may be generating it right now
        if not path.exists():
            _generate(path)
    return path.read_bytes()


def _generate(path: Path) -> None:
    """Run ``cyclonedx-py environment`` on this interpreter and move its output into place."""
    partial = path.with_suffix(f".{os.getpid()}.partial")
    command = [
        sys.executable,
        "-m",
        "cyclonedx_py",
        "environment",
        "--spec-version",
        SPEC_VERSION,
        "--output-format",
        "JSON",
        "--output-reproducible",  # no timestamp, no random serial number
        "--output-file",
        str(partial),
        sys.executable,
    ]
    pyproject = Path(settings.BASE_DIR) / "pyproject.toml"
    if pyproject.is_file():  # names MC itself as the SBOM's main component
        command[-1:-1] = ["--pyproject", str(pyproject)]
    logger.info("generating the environment SBOM into %s", path)
    try:
        subprocess.run(  # noqa: S603 - a fixed command on our own interpreter
            command, check=True, capture_output=True, timeout=GENERATE_TIMEOUT_S, env=_environment()
        )
    except (OSError, subprocess.SubprocessError) as exc:
        partial.unlink(missing_ok=True)
        stderr = getattr(exc, "stderr", b"") or b""
        raise SbomUnavailable(
            f"cyclonedx-py environment failed: {exc} {stderr.decode(errors='replace')[-500:]}"
        ) from exc
    os.replace(partial, path)


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("SOURCE_DATE_EPOCH", None)  # with it, cyclonedx-py writes a timestamp
    return environment
