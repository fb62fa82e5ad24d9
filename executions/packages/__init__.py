"""Task packages: what ``uses: pkg:<namespace>/<name>@<version>`` runs.

Pure Python (no Django), shared with the CLI. See docs/packages.md.
"""

from .base import (
    RESOURCE_CLASSES,
    ArtifactSink,
    Cost,
    InputInvalid,
    PackageSettings,
    StepContext,
    StepFailed,
    TaskPackage,
)
from .registry import (
    ENTRY_POINT_GROUP,
    PackageRegistry,
    UnknownPackage,
    build_default_registry,
    default_registry,
    package_problems,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "RESOURCE_CLASSES",
    "ArtifactSink",
    "Cost",
    "InputInvalid",
    "PackageRegistry",
    "PackageSettings",
    "StepContext",
    "StepFailed",
    "TaskPackage",
    "UnknownPackage",
    "build_default_registry",
    "default_registry",
    "package_problems",
]
