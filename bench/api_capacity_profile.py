"""Where a request's time goes, in-process. Run: python -m bench.api_capacity_profile

A helper of ``bench_api_capacity`` (not a bench: ``make bench`` does not run it). It uses
the ``mc_bench`` database that bench leaves behind (tenant, authors, workflows, runs),
sends each kind of request of its mix ``SAMPLES`` times through Django's test client
(the whole middleware stack, DRF, the real PostgreSQL and Redis cache, no gunicorn),
and times the parts by wrapping them:

* authentication (``ApiTokenAuthentication.authenticate``: the token lookup),
* throttling (``UserThrottle.allow_request``: the Redis cache read and write),
* pagination (``paginate_queryset``: the ``COUNT(*)`` and the page),
* the output serializer (``ListSerializer.data`` / the detail serializer),
* at create: ``execution_create`` and, inside it, the policy packs (``policies_evaluate``:
  reading usage and the four Rego packs), planning, the rows and sending the step,
* the response rendering (``JSONRenderer.render``).

For each kind it prints wall and CPU ms per request, queries per request and their
time (``CaptureQueriesContext``), and ms per part. Workers need not run: the step's
message is sent to the bench's broker database and left there (purged by the next run
of the bench).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .bench_api_capacity import MC_ENV
from .harness import print_rows

SAMPLES = 100
WARMUP = 10

_parts: dict[str, float] = defaultdict(float)
_labels: list[str] = []  # in the order they were wrapped: callers before the parts they call


def _wrap(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a version that adds its wall time to ``_parts[label]``."""
    original = getattr(owner, name)
    _labels.append(label)
    is_property = isinstance(original, property)
    function: Callable[..., Any] = original.fget if is_property else original  # type: ignore[assignment]

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _parts[label] += time.perf_counter() - start

    setattr(owner, name, property(timed) if is_property else timed)


def instrument() -> None:
    """Wrap the parts of a request named in the module docstring."""
    import rest_framework.serializers
    from rest_framework.renderers import JSONRenderer

    import executions.apis
    import executions.services.create
    import executions.services.dispatch
    import policy.services
    from mc_project.pagination import PageNumberPagination
    from mc_project.tenancy.authentication import ApiTokenAuthentication
    from mc_project.throttling import UserThrottle

    _wrap(ApiTokenAuthentication, "authenticate", "authentication (token lookup)")
    _wrap(UserThrottle, "allow_request", "throttle (Redis cache)")
    _wrap(PageNumberPagination, "paginate_queryset", "pagination (count + page query)")
    _wrap(rest_framework.serializers.ListSerializer, "data", "list serializer (at create: the run's steps)")
    _wrap(JSONRenderer, "render", "JSON rendering")
    _wrap(executions.apis.services, "execution_create", "execution_create (service)")
    _wrap(executions.apis, "_detail", "detail serializer (run + steps)")
    _wrap(executions.apis, "_workflow", "workflow lookup")
    _wrap(executions.services.create, "route_for", "  canary route lookup")
    _wrap(executions.services.create, "version_for_run", "  latest published version")
    _wrap(executions.services.create, "plan_for", "  plan_build")
    _wrap(executions.services.create, "policies_evaluate", "  policies_evaluate (4 packs)")
    _wrap(policy.services, "usage_for", "    usage_for (spend today)")
    _wrap(policy.services, "_engine_for", "    engine lookup")
    _wrap(executions.services.create, "decisions_store", "  decisions_store (4 rows)")
    _wrap(executions.services.create, "steps_create", "  steps_create (+ send on commit)")
    _wrap(executions.services.dispatch, "send_steps", "    send_steps (broker)")


@contextmanager
def parts() -> Iterator[dict[str, float]]:
    _parts.clear()
    result: dict[str, float] = {}
    yield result
    result.update(_parts)


def profile(client: Any, kind: str, call: Callable[[], Any], expected: int) -> list[tuple[str, ...]]:
    """Time ``call`` SAMPLES times after WARMUP; rows of the table for this kind."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        call()
    wall = cpu = 0.0
    queries = 0
    query_time = 0.0
    with parts() as totals:
        for _ in range(SAMPLES):
            with CaptureQueriesContext(connection) as captured:
                start, start_cpu = time.perf_counter(), time.process_time()
                response = call()
                wall += time.perf_counter() - start
                cpu += time.process_time() - start_cpu
            if response.status_code != expected:
                raise RuntimeError(f"{kind}: {response.status_code} {response.content[:300]!r}")
            queries += len(captured.captured_queries)
            query_time += sum(float(q["time"]) for q in captured.captured_queries)
    rows: list[tuple[str, ...]] = [
        (kind, f"{wall * 1000 / SAMPLES:.1f}", f"{cpu * 1000 / SAMPLES:.1f}", f"{queries / SAMPLES:.1f}",
         f"{query_time * 1000 / SAMPLES:.1f}"),
    ]  # fmt: skip
    rows += [
        (f"  {label}", f"{totals[label] * 1000 / SAMPLES:.2f}", "", "", "") for label in _labels if label in totals
    ]
    return rows


def main() -> None:
    """Profile each kind of request against the database bench_api_capacity left behind."""
    os.environ.update(MC_ENV)
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from mc_project.tenancy.services import token_create
    from workflows.models import Workflow

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    workflow = Workflow.objects.filter(name="bench-api-00").select_related("tenant").first()
    if workflow is None:
        raise SystemExit("No workflow bench-api-00 in mc_bench: run python -m bench.bench_api_capacity first.")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="bench-client-00")
    _, raw = token_create(user=user, name="profile")
    client = Client(HTTP_AUTHORIZATION=f"Token {raw}")
    instrument()
    from executions.models import Execution

    print(f"[api_capacity_profile] {Execution.objects.count()} runs in {workflow.tenant.slug}; "
          f"{WARMUP} warm-up + {SAMPLES} requests per kind, test client, no gunicorn\n")  # fmt: skip
    rows = []
    rows += profile(client, "healthz", lambda: client.get("/healthz"), 200)
    rows += profile(client, "list_runs", lambda: client.get("/api/executions"), 200)
    rows += profile(client, "list_workflows", lambda: client.get("/api/workflows"), 200)
    rows += profile(
        client,
        "start_run",
        lambda: client.post("/api/executions", {"workflow": workflow.name}, content_type="application/json"),
        201,
    )
    print_rows(("request / part", "wall ms", "CPU ms", "queries", "query ms"), rows)


if __name__ == "__main__":
    main()
