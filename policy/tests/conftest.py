"""Fixtures of the policy tests: engines over test bundles (both kinds, for agreement tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from policy.engine import Bundle, OpaEngine, PolicyEngine, RegoEngine, load_bundle
from policy.tests.engine_helpers import budget_dir
from policy.tests.opa_standin import OpaStandIn


@pytest.fixture
def budget(tmp_path: Path) -> Bundle:
    return load_bundle(budget_dir(tmp_path))


@pytest.fixture
def rego_engine_for() -> Iterator[Callable[..., RegoEngine]]:
    engines: list[RegoEngine] = []

    def make(bundles: list[Bundle], timeout_s: float = 2.0) -> RegoEngine:
        engines.append(RegoEngine(bundles, timeout_s=timeout_s))
        return engines[-1]

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def opa_for() -> Iterator[Callable[..., tuple[OpaEngine, OpaStandIn]]]:
    started: list[tuple[OpaEngine, OpaStandIn]] = []

    def make(bundles: list[Bundle], timeout_s: float = 2.0) -> tuple[OpaEngine, OpaStandIn]:
        standin = OpaStandIn(bundles).start()
        started.append((OpaEngine(standin.base_url, bundles, timeout_s=timeout_s), standin))
        return started[-1]

    yield make
    for engine, standin in started:
        engine.close()
        standin.stop()


@pytest.fixture(params=["rego", "opa"])
def engine_for(request: pytest.FixtureRequest, rego_engine_for: Any, opa_for: Any) -> Callable[..., PolicyEngine]:
    """Each behaviour test runs against both engines: they must decide alike."""
    if request.param == "rego":
        return rego_engine_for
    return lambda bundles, timeout_s=2.0: opa_for(bundles, timeout_s)[0]
