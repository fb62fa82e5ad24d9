"""The embedded broker's exchange table survives processes binding queues to it at once."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from kombu import Connection

from mc_project.broker import FilesystemTransport

PROCESSES = 8


def _bind(folder: str, index: int, start: multiprocessing.synchronize.Barrier) -> None:
    options = {"data_folder_in": folder, "data_folder_out": folder, "control_folder": f"{folder}/control"}
    with Connection("filesystem://", transport=FilesystemTransport, transport_options=options) as connection:
        channel = connection.channel()
        start.wait()
        channel._queue_bind("celery.pidbox", "", "", f"worker-{index}.celery.pidbox")


def test_concurrent_binds_leave_a_whole_table_with_every_binding(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")  # fork in a process with threads may hang
    for round_ in range(3):
        folder = tmp_path / f"round-{round_}"
        folder.mkdir()
        start = context.Barrier(PROCESSES)
        processes = [context.Process(target=_bind, args=(str(folder), i, start)) for i in range(PROCESSES)]
        for process in processes:
            process.start()
        for process in processes:
            process.join(60)
            assert process.exitcode == 0
        table = json.loads((folder / "control" / "celery.pidbox.exchange").read_text())  # one whole document
        assert sorted(row[2] for row in table) == sorted(f"worker-{i}.celery.pidbox" for i in range(PROCESSES))
