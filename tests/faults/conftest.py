"""Fixtures of the fault suite (``make test-faults``): clusters of real processes.

``cluster`` is shared by the tests that leave it healthy (every run finished, every
process alive); a test that fails, or leaves it otherwise, marks it dirty and the next test
gets a new one. ``fresh_cluster`` makes a cluster of the test's own shape and removes it
at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .checks import summary_lines
from .cluster import Cluster, diamond_manifest

DIAMOND = "faults-diamond"
# One line per request of the outage probes would drown the logs that matter.
logging.getLogger("httpx").setLevel(logging.WARNING)


def _needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("runuser") is None or shutil.which("redis-server") is None:
        pytest.skip("fault tests need root (initdb as postgres, network namespaces), runuser and redis-server")


class _SharedCluster:
    """The session's shared cluster, replaced when a test leaves it dirty."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.current: Cluster | None = None
        self.dirty = False

    def get(self) -> Cluster:
        if self.current is not None and (self.dirty or not self.current.healthy()):
            self.current.stop()
            self.current = None
        if self.current is None:
            cluster = Cluster(self.factory.mktemp("cluster"))
            self.current = cluster
            cluster.start()
            cluster.publish(diamond_manifest(cluster.effects, name=DIAMOND))
            self.dirty = False
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


@pytest.fixture(scope="session")
def _shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SharedCluster]:
    _needs_root()
    shared = _SharedCluster(tmp_path_factory)
    yield shared
    shared.close()


@pytest.fixture
def cluster(_shared: _SharedCluster, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The shared cluster with the diamond workflow published; dirty again if the test fails."""
    current = _shared.get()
    yield current
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed or not current.healthy():
        _shared.dirty = True


@pytest.fixture
def fresh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Cluster]]:
    """``fresh_cluster(**Cluster options)``: a cluster of the test's own, removed at the end."""
    _needs_root()
    made: list[Cluster] = []

    def make(**options: Any) -> Cluster:
        cluster = Cluster(tmp_path_factory.mktemp("fresh"), **options)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        with contextlib.suppress(Exception):
            cluster.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = summary_lines()
    if lines:
        terminalreporter.section("recovery with the shipped defaults")
        for line in lines:
            terminalreporter.write_line(line)
