"""The engine protocol shared by the in-process and the OPA-server implementations."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .bundle import BundleMeta
from .decision import Decision, input_digest, policy_error


@runtime_checkable
class PolicyEngine(Protocol):
    """Evaluates packs against a ``mc.policy/v1`` input document; never raises for a bad policy."""

    def evaluate(self, bundle_name_or_pack: str, input: dict[str, Any]) -> Decision: ...

    def evaluate_all(self, input: dict[str, Any]) -> list[Decision]: ...


def pack_name(bundle_name_or_pack: str) -> str:
    """``"budget"`` and ``"mc.budget"`` both name the budget pack."""
    return bundle_name_or_pack.removeprefix("mc.")


def unknown_pack(name: str, input: dict[str, Any]) -> Decision:
    """Fail closed when asked for a pack no bundle provides."""
    return policy_error(BundleMeta(name, "", ""), safe_input_digest(input), "no bundle provides this pack", 0.0)


def safe_input_digest(input: dict[str, Any]) -> str:
    """The input digest, or "" when the input is not canonical JSON (it then fails closed)."""
    try:
        return input_digest(input)
    except (ValueError, TypeError):
        return ""
