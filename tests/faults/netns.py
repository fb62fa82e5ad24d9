"""Hosts for the fault tests: Linux network namespaces joined to the root namespace by veth pairs.

Host ``n`` is the namespace ``mcf-<n>``, reached over the veth pair ``mcf<n>-root`` (in the
root namespace, 10.231.<n>.1/24) and ``mcf<n>-host`` (inside, 10.231.<n>.2/24). PostgreSQL and
Redis listen on the root-side addresses, so a host's workers reach them only over its link:
taking ``mcf<n>-root`` down cuts the host off the broker and the database, as a network
partition would. Only these names and 10.231.0.0/16 are ever touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@dataclass
class Host:
    index: int

    @property
    def netns(self) -> str:
        return f"mcf-{self.index}"

    @property
    def root_link(self) -> str:
        return f"mcf{self.index}-root"

    @property
    def host_link(self) -> str:
        return f"mcf{self.index}-host"

    @property
    def gateway(self) -> str:
        """The root-side address: where this host reaches PostgreSQL and Redis."""
        return f"10.231.{self.index}.1"

    @property
    def address(self) -> str:
        return f"10.231.{self.index}.2"

    def create(self) -> Host:
        self.delete()  # what a crashed earlier run may have left under our names
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.root_link, "type", "veth", "peer", "name", self.host_link)
        _ip("link", "set", self.host_link, "netns", self.netns)
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.root_link)
        _ip("link", "set", self.root_link, "up")
        for args in (
            ("addr", "add", f"{self.address}/24", "dev", self.host_link),
            ("link", "set", self.host_link, "up"),
            ("link", "set", "lo", "up"),
        ):
            _ip("netns", "exec", self.netns, "ip", *args)
        return self

    def cut(self) -> None:
        """The host loses the network: its link to the root namespace goes down."""
        _ip("link", "set", self.root_link, "down")

    def reconnect(self) -> None:
        _ip("link", "set", self.root_link, "up")

    def pids(self) -> list[int]:
        result = _ip("netns", "pids", self.netns, check=False)
        return [int(pid) for pid in result.stdout.split()]

    def kill(self) -> int:
        """SIGKILL every process of the host (it dies outright); returns how many there were."""
        pids = self.pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def delete(self) -> None:
        if self.netns in _ip("netns", "list", check=False).stdout.split():
            self.kill()
            _ip("netns", "delete", self.netns, check=False)
        _ip("link", "delete", self.root_link, check=False)
