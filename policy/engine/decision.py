"""Decisions: what a pack said about one input, and the fail-closed rules for reading it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from workflows.manifest import canonical_json

from .bundle import BundleMeta
from .errors import PolicyEvalError

POLICY_ERROR = "policy_error"

Result = Literal["allow", "deny", "warn"]


@dataclass(frozen=True)
class Decision:
    """One pack's verdict on one input; ``error`` is set whenever the verdict is a policy_error."""

    pack: str
    revision: str
    bundle_digest: str
    input_digest: str
    result: Result
    deny: list[dict[str, str]] = field(default_factory=list)
    warn: list[dict[str, str]] = field(default_factory=list)
    duration_ms: float = 0.0
    error: str | None = None

    @property
    def allowed(self) -> bool:
        return self.result != "deny"


def input_digest(document: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the RFC 8785 canonical JSON of the input."""
    return "sha256:" + hashlib.sha256(canonical_json(document)).hexdigest()


def decision_from_document(
    meta: BundleMeta, digest: str, document: Any, duration_ms: float, *, undefined: bool = False
) -> Decision:
    """Read a pack's package document (``{"deny": [...], "warn": [...], ...}``), failing closed."""
    try:
        if undefined:
            raise PolicyEvalError(f"data.mc.{meta.name} is undefined")
        deny = explanations(meta.name, document, "deny")
        warn = explanations(meta.name, document, "warn")
    except PolicyEvalError as exc:
        return policy_error(meta, digest, str(exc), duration_ms)
    result: Result = "deny" if deny else "warn" if warn else "allow"
    return Decision(meta.name, meta.revision, meta.digest, digest, result, deny, warn, duration_ms)


def policy_error(meta: BundleMeta, digest: str, message: str, duration_ms: float) -> Decision:
    """The fail-closed verdict: a deny carrying one ``policy_error`` explanation."""
    item = {"code": POLICY_ERROR, "message": f"policy {meta.name}: {message}", "path": ""}
    return Decision(meta.name, meta.revision, meta.digest, digest, "deny", [item], [], duration_ms, message)


def explanations(pack: str, document: Any, rule: str) -> list[dict[str, str]]:
    """Validate and sort the ``deny`` or ``warn`` set; raise PolicyEvalError if it is unusable."""
    if not isinstance(document, dict):
        raise PolicyEvalError(f"data.mc.{pack} is a {_json_type(document)}, not an object")
    if rule not in document:
        raise PolicyEvalError(f"data.mc.{pack}.{rule} is undefined")
    items = document[rule]
    if not isinstance(items, list):
        raise PolicyEvalError(f"data.mc.{pack}.{rule} is a {_json_type(items)}, not a set")
    checked = [_explanation(pack, rule, item) for item in items]
    unique = {(e["path"], e["code"], e["message"]): e for e in checked}
    return [unique[key] for key in sorted(unique)]


def _explanation(pack: str, rule: str, item: Any) -> dict[str, str]:
    where = f"data.mc.{pack}.{rule}"
    if not isinstance(item, dict):
        raise PolicyEvalError(f"{where} holds a {_json_type(item)}, not an object with code and message")
    code, message, path = item.get("code"), item.get("message"), item.get("path", "")
    if not isinstance(code, str) or not code:
        raise PolicyEvalError(f"{where} holds an item without a string code")
    if not isinstance(message, str) or not message:
        raise PolicyEvalError(f"{where} holds an item (code {code!r}) without a string message")
    if not isinstance(path, str):
        raise PolicyEvalError(f"{where} holds an item (code {code!r}) whose path is not a string")
    return {"code": code, "message": message, "path": path}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "set or array"
    return "object" if isinstance(value, dict) else type(value).__name__
