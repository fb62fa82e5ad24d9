"""Serve the metrics files of one host's MC processes, for hosts without an API process.

``/metrics`` of the API sums the files of every process of its host (mc_project.metrics).
A Celery worker pod on Kubernetes has no API process beside it: this small server, run as
a sidecar sharing the pod's ``PROMETHEUS_MULTIPROC_DIR``, serves what the worker's processes
counted (step durations, finished runs, receipts signed)::

    python -m mc_project.metrics_server --port 9808

It imports no Django and reads nothing but that directory; the scrape-time gauges (canary,
queue backlog) stay on the API's ``/metrics``, so nothing is exported twice.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from prometheus_client import CollectorRegistry, multiprocess, start_http_server


def serve(port: int, address: str = "0.0.0.0") -> threading.Event:  # noqa: S104 - a pod's sidecar port
    """Start serving the multiprocess directory on ``address:port``; set the returned event to stop waiting."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise SystemExit("PROMETHEUS_MULTIPROC_DIR must name the directory the host's MC processes count into")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=address, registry=registry)
    return threading.Event()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9808)
    parser.add_argument("--address", default="0.0.0.0")  # noqa: S104
    args = parser.parse_args(argv)
    stop = serve(args.port, args.address)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    main()
