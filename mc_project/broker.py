"""The embedded broker: kombu's filesystem transport, with its exchange-table race fixed.

kombu 5.x binds a queue to an exchange by opening the exchange's table file with ``"wb"``
when it does not exist yet, which truncates it *before* taking the file lock. Two processes
binding at once (the demo's worker and Flower, for the broadcast exchange) can then both
write, the shorter table over the longer one, leaving a file of one JSON document followed
by the other's tail: every later broadcast fails with ``Extra data``. Here the file is
opened without truncation, read and rewritten under the lock, and truncated after writing.
``mc_project.celery`` registers this transport for ``filesystem://``.
"""

from __future__ import annotations

import os
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads


class FilesystemChannel(filesystem.Channel):
    def _queue_bind(self, exchange: str, routing_key: Any, pattern: Any, queue: Any) -> None:
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            descriptor = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc
        with os.fdopen(descriptor, "rb+", buffering=0) as table:
            filesystem.lock(table, filesystem.LOCK_EX)
            try:
                content = bytes_to_str(table.read())
                bindings = [filesystem.exchange_queue_t(*row) for row in loads(content)] if content.strip() else []
                if binding not in bindings:
                    bindings.insert(0, binding)
                    table.seek(0)
                    table.write(str_to_bytes(dumps(bindings)))
                    table.truncate()
            finally:
                filesystem.unlock(table)


class FilesystemTransport(filesystem.Transport):
    Channel = FilesystemChannel

    @property
    def default_connection_params(self) -> dict[str, Any]:
        # Folders on this host: no hostname to fall back to, so kombu does not warn
        # "No hostname was supplied. Reverting to default 'localhost'" on every start.
        return {"port": self.default_port}
