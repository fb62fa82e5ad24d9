"""Policy engine: load OPA-style bundles and evaluate packs, in-process or through OPA.

Pure Python (no Django)::

    engine = RegoEngine([load_bundle("policy/bundles/budget")])
    decision = engine.evaluate("budget", policy_input)   # never raises for a bad policy
    if decision.result == "deny": ...

Every failure (error, timeout, undefined ``deny``/``warn``, wrong shape, OPA down) is a
deny with one ``policy_error`` explanation: the engine fails closed.
"""

from .base import PolicyEngine
from .bundle import MAX_BUNDLE_BYTES, MAX_BUNDLE_FILES, Bundle, BundleMeta, bundle_from_files, load_bundle
from .decision import POLICY_ERROR, Decision, input_digest
from .errors import BundleError, PolicyEvalError
from .opa_engine import OpaEngine
from .rego_engine import RegoEngine

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_FILES",
    "POLICY_ERROR",
    "Bundle",
    "BundleError",
    "BundleMeta",
    "Decision",
    "OpaEngine",
    "PolicyEngine",
    "PolicyEvalError",
    "RegoEngine",
    "bundle_from_files",
    "input_digest",
    "load_bundle",
]
