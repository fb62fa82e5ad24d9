"""deploy/helm/mc: the chart lints, renders with each values file, and its manifests are sound.

Rendered with ``helm template`` (no cluster) and checked against the Kubernetes 1.29-1.31
schemas (kubernetes-validate ships them), against MC's own queues and settings, and for a
``restricted`` pod security context.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mc_project.env import read_environment
from receipts.signing.keys import load_private_key
from tests.deploy.conftest import CHART, VALUES, Manifests, pod_specs, routed_queues, run

# Kinds of custom resources (KEDA, the Prometheus operator): no upstream schema to check.
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PodMonitor"}
KUBERNETES_VERSIONS = ["1.29.0", "1.30.0", "1.31.0"]
# The longest soft limit a step has by default: manifests' timeout_seconds.
STEP_SOFT_LIMIT_S = 3600


def _by_kind(manifests: Manifests, kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests if doc["kind"] == kind}


def _workers(manifests: Manifests) -> dict[str, dict[str, Any]]:
    return {name: doc for name, doc in _by_kind(manifests, "Deployment").items() if "-worker-" in name}


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_lint_passes(helm: str, values: str) -> None:
    command = [helm, "lint", str(CHART), "--strict"]
    for path in VALUES[values]:
        command += ["-f", str(path)]
    result = run(command)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_manifests_match_the_kubernetes_schemas(rendered: Manifests, version: str) -> None:
    problems = []
    for doc in rendered:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert problems == []


def test_every_queue_mc_routes_to_has_a_worker_deployment(rendered: Manifests) -> None:
    consumed = {}
    for name, doc in _workers(rendered).items():
        command = _container(doc)["command"]
        assert command[:4] == ["celery", "-A", "mc_project", "worker"], name
        consumed[command[command.index("-Q") + 1]] = name
    assert routed_queues() <= set(consumed), f"no worker Deployment for {sorted(routed_queues() - set(consumed))}"


def test_workers_take_concurrency_and_resources_from_values(render: Callable[..., Manifests]) -> None:
    manifests = render([], "workers.large.concurrency=3", "workers.large.resources.requests.cpu=7500m")
    large = _container(_workers(manifests)["mc-worker-large"])
    assert large["command"][large["command"].index("-c") + 1] == "3"
    assert large["resources"]["requests"]["cpu"] == "7500m"


def test_workers_stop_warm_for_longer_than_a_step_soft_limit(rendered: Manifests) -> None:
    grace = read_environment().step_timeout_grace
    for name, doc in _workers(rendered).items():
        queue = _container(doc)["command"][5]
        if queue in {"mc.small", "mc.medium", "mc.large"}:
            assert doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > STEP_SOFT_LIMIT_S + grace, name


def test_beat_is_a_singleton(rendered: Manifests) -> None:
    beat = _by_kind(rendered, "Deployment")["mc-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert "mc-beat" not in _by_kind(rendered, "ScaledObject")


def test_probes_healthz_readyz_and_worker_ping(rendered: Manifests) -> None:
    api = _container(_by_kind(rendered, "Deployment")["mc-api"])
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for name, doc in _workers(rendered).items():
        probe = " ".join(_container(doc)["livenessProbe"]["exec"]["command"])
        assert "celery -A mc_project inspect ping -d" in probe, name


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(rendered: Manifests) -> None:
    job = _by_kind(rendered, "Job")["mc-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert _container(job)["command"] == ["python", "manage.py", "migrate", "--noinput"]
    # What the Job reads exists before it: hooks of a lower weight (PgBouncer's Secret is
    # not among them: the Job talks to the database directly).
    container = _container(job)
    read = {item["configMapRef"]["name"] for item in container.get("envFrom", [])}
    read |= {item["valueFrom"]["secretKeyRef"]["name"] for item in container["env"] if "valueFrom" in item}
    read |= {v["secret"]["secretName"] for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v}
    for kind in ("ConfigMap", "Secret"):
        for name, doc in _by_kind(rendered, kind).items():
            if name in read:
                assert int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0, name


def test_helm_test_pod_checks_readyz_and_plans(rendered: Manifests) -> None:
    pod = _by_kind(rendered, "Pod")["mc-test"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "/readyz" in script
    assert "maestro plan" in script


def test_no_secret_value_appears_in_a_config_map(render: Callable[..., Manifests]) -> None:
    sets = [
        "secrets.values.secretKey=s3cret-key-value-0123456789",
        "secrets.values.databaseUrl=postgres://mc:db-pass-4242@db:5432/mc",
        "secrets.values.brokerUrl=redis://:redis-pass-4242@redis:6379/0",
        "secrets.values.canaryWebhookSecret=hook-secret-4242",
        "secrets.values.flowerBasicAuth=ops:flower-pass-4242",
    ]
    manifests = render(VALUES["production"], "secrets.existingSecret=", *sets)
    secret_values = set()
    for secret in _by_kind(manifests, "Secret").values():
        secret_values |= {base64.b64decode(value).decode() for value in secret["data"].values()}
    assert {"s3cret-key-value-0123456789", "hook-secret-4242"} <= secret_values
    for name, config_map in _by_kind(manifests, "ConfigMap").items():
        for key, value in (config_map.get("data") or {}).items():
            leaked = [secret for secret in secret_values if secret and secret in value]
            assert not leaked, f"ConfigMap {name} {key} holds a Secret value"
    for name, doc in _by_kind(manifests, "Deployment").items():
        for env in _container(doc).get("env", []):
            assert env.get("value") not in secret_values, f"{name} sets {env['name']} in clear"


def test_an_existing_secret_is_used_and_none_is_created(render: Callable[..., Manifests]) -> None:
    manifests = render(VALUES["production"])
    assert _by_kind(manifests, "Secret") == {}
    env = {item["name"]: item for item in _container(_by_kind(manifests, "Deployment")["mc-api"])["env"]}
    assert env["MC_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "mc-production"


def test_the_chart_makes_the_secret_and_keeps_a_generated_signing_key(render: Callable[..., Manifests]) -> None:
    secret = _by_kind(render([]), "Secret")["mc-secrets"]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    pem = base64.b64decode(secret["data"]["signing-key.pem"])
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, as MC requires
    assert load_private_key(pem).curve.name == "secp256r1"


def test_pod_security_context_is_restricted(rendered: Manifests) -> None:
    for name, spec in pod_specs(rendered):
        pod = spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, name
        assert pod.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        for volume in spec.get("volumes", []):
            assert set(volume) - {"name"} <= {
                "emptyDir",
                "secret",
                "configMap",
                "projected",
                "persistentVolumeClaim",
            }, f"{name}: {volume}"
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert "privileged" not in context or context["privileged"] is False, where
            assert container.get("resources", {}).get("requests"), f"{where} has no resource requests"


def test_canary_values_become_mc_canary_settings(render: Callable[..., Manifests]) -> None:
    data = _by_kind(render(VALUES["canary"]), "ConfigMap")["mc-config"]["data"]
    assert data["MC_CANARY_WEIGHT"] == "10"
    assert data["MC_CANARY_MAX_ERROR_RATE_PCT"] == "1"
    assert data["MC_CANARY_MAX_P95_MS"] == "900"
    assert data["MC_CANARY_ERROR_BUDGET_MINUTES"] == "30"
    assert data["MC_BUDGET_MAX_COST_PER_RUN_USD"] == "1.5"


def test_keda_scales_each_worker_on_its_queue_lists(render: Callable[..., Manifests]) -> None:
    manifests = render([], "keda.enabled=true")
    scaled = _by_kind(manifests, "ScaledObject")
    workers = _workers(manifests)
    assert set(scaled) == set(workers)
    for name, doc in scaled.items():
        queue = _container(workers[name])["command"][5]
        lists = {trigger["metadata"]["listName"] for trigger in doc["spec"]["triggers"]}
        assert lists == {queue, f"{queue}\x06\x163"}
        assert "replicas" not in workers[name]["spec"], "KEDA owns the replica count"
    assert _by_kind(render([]), "ScaledObject") == {}, "KEDA is off by default"


PROMETHEUS = "keda.prometheus.serverAddress=http://prometheus-operated.monitoring:9090"


def _triggers(manifests: Manifests) -> dict[str, list[dict[str, Any]]]:
    return {name: doc["spec"]["triggers"] for name, doc in _by_kind(manifests, "ScaledObject").items()}


def test_keda_given_a_prometheus_scales_on_the_exact_backlog(render: Callable[..., Manifests]) -> None:
    """The default trigger (auto) with a Prometheus address: the sum of the queue's lists, one trigger."""
    manifests = render([], "keda.enabled=true", PROMETHEUS)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    per_replica = {name: worker["autoscaling"]["backlogPerReplica"] for name, worker in values["workers"].items()}
    workers = _workers(manifests)
    triggers = _triggers(manifests)
    assert set(triggers) == set(workers)
    for name, found in triggers.items():
        queue = _container(workers[name])["command"][5]
        assert found == [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": "http://prometheus-operated.monitoring:9090",
                    "query": f'sum(mc_queue_backlog{{queue="{queue}"}})',
                    "threshold": str(per_replica[name.removeprefix("mc-worker-")]),
                },
            }
        ], name
    assert "TriggerAuthentication" not in {doc["kind"] for doc in manifests}


def test_keda_without_a_prometheus_falls_back_to_a_redis_trigger_per_list(render: Callable[..., Manifests]) -> None:
    for sets in ([], ["keda.trigger=redis", PROMETHEUS]):
        triggers = _triggers(render([], "keda.enabled=true", *sets))["mc-worker-medium"]
        assert {trigger["type"] for trigger in triggers} == {"redis"}, sets
        assert [trigger["metadata"]["listName"] for trigger in triggers] == ["mc.medium", "mc.medium\x06\x163"]


def test_the_production_example_scales_on_prometheus(render: Callable[..., Manifests]) -> None:
    triggers = _triggers(render(VALUES["production"]))
    assert {trigger["type"] for found in triggers.values() for trigger in found} == {"prometheus"}


def test_the_prometheus_trigger_needs_an_address(helm: str) -> None:
    result = run([helm, "template", "mc", str(CHART), "--set", "keda.enabled=true", "--set", "keda.trigger=prometheus"])
    assert result.returncode != 0
    assert "keda.prometheus.serverAddress: the prometheus trigger needs the address" in result.stderr


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("workers.small.concurrency=0", "workers.small.concurrency: Must be greater than or equal to 1"),
        ("image.tag=latest", "image.tag"),
        ("canary.weight=150", "canary.weight: Must be less than or equal to 100"),
        ("keda.trigger=sqs", "keda.trigger: keda.trigger must be one of the following"),
        ("pgbouncer.defaultPoolSize=0", "pgbouncer.defaultPoolSize: Must be greater than or equal to 1"),
        ("pgbouncer.image.tag=latest", "pgbouncer.image.tag"),
    ],
)
def test_the_values_schema_rejects_a_bad_value_with_a_message(helm: str, setting: str, message: str) -> None:
    result = subprocess.run(
        [helm, "template", "mc", str(CHART), "--set", setting], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_the_chart_environment_passes_the_production_check(
    render: Callable[..., Manifests], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API container's environment, from the ConfigMap and the Secret the chart makes, is production-ready."""
    manifests = render(VALUES["canary"], "secrets.values.databaseUrl=postgres://mc:pw@db:5432/mc")
    config = _by_kind(manifests, "ConfigMap")["mc-config"]["data"]
    secret = {
        key: base64.b64decode(value).decode()
        for key, value in _by_kind(manifests, "Secret")["mc-secrets"]["data"].items()
    }
    api = _container(_by_kind(manifests, "Deployment")["mc-api"])
    environment = dict(config)
    for item in api["env"]:
        if "valueFrom" in item:
            reference = item["valueFrom"]["secretKeyRef"]
            if reference["key"] in secret:
                environment[item["name"]] = secret[reference["key"]]
            else:
                assert reference["optional"], f"{item['name']} names a key the Secret lacks"
        else:
            environment[item["name"]] = item["value"]
    mount = next(m for m in api["volumeMounts"] if m["name"] == "signing-key")["mountPath"]
    key_file = tmp_path / "signing-key.pem"
    key_file.write_text(secret["signing-key.pem"])
    assert environment["MC_SIGNING_KEY"] == f"{mount}/signing-key.pem"
    environment.update(MC_SIGNING_KEY=str(key_file), MC_KEYS_DIR=str(tmp_path / "keys"))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    env = read_environment()
    assert env.production_problems() + env.signing_problems() + env.canary_problems() == []
    assert (env.canary_weight, env.canary_max_p95_ms, env.budget_max_cost_per_run_usd) == (10, 900, 1.5)


def test_a_shared_keyring_claim_replaces_each_pods_empty_dir(render: Callable[..., Manifests]) -> None:
    manifests = render([], "keyring.existingClaim=mc-keys")
    for name, spec in pod_specs(manifests):
        keyring = [volume for volume in spec.get("volumes", []) if volume["name"] == "keyring"]
        if keyring:
            assert keyring == [{"name": "keyring", "persistentVolumeClaim": {"claimName": "mc-keys"}}], name


def test_each_worker_pod_serves_its_own_metrics(render: Callable[..., Manifests]) -> None:
    manifests = render(VALUES["production"])
    for name, doc in _workers(manifests).items():
        containers = {c["name"]: c for c in doc["spec"]["template"]["spec"]["containers"]}
        sidecar = containers["metrics"]
        assert sidecar["command"][:3] == ["python", "-m", "mc_project.metrics_server"], name
        mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
        assert mounts["metrics"] == {m["name"]: m["mountPath"] for m in containers["worker"]["volumeMounts"]}["metrics"]
    monitor = _by_kind(manifests, "PodMonitor")["mc-workers"]
    selected = monitor["spec"]["selector"]["matchExpressions"][1]["values"]
    assert sorted(selected) == sorted(
        doc["metadata"]["labels"]["app.kubernetes.io/component"] for doc in _workers(manifests).values()
    )


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _secret_data(doc: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in doc["data"].items()}


@pytest.mark.parametrize("values", ["default", "canary", "production"])
def test_pgbouncer_is_off_by_default(render: Callable[..., Manifests], values: str) -> None:
    manifests = render(VALUES[values], "networkPolicy.enabled=true")
    names = {f"{doc['kind']}/{doc['metadata']['name']}" for doc in manifests}
    assert not [name for name in names if "pgbouncer" in name]
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            assert "MC_DB_PGBOUNCER" not in _env(container), name


def test_with_pgbouncer_mc_connects_through_it_and_migrations_do_not(render: Callable[..., Manifests]) -> None:
    manifests = render(VALUES["pgbouncer"], "pgbouncer.defaultPoolSize=7", "pgbouncer.reservePoolSize=3")
    secret = _secret_data(_by_kind(manifests, "Secret")["mc-pgbouncer"])
    service = _by_kind(manifests, "Service")["mc-pgbouncer"]
    assert secret["database-url"] == f"postgres://mc:pw-4242@mc-pgbouncer:{service['spec']['ports'][0]['port']}/mc"
    ini = secret["pgbouncer.ini"]
    assert "mc = host=db.example.com port=5432 dbname=mc" in ini
    for line in ("pool_mode = transaction", "default_pool_size = 7", "reserve_pool_size = 3"):
        assert line in ini.splitlines()
    # The URL's sslmode applies between PgBouncer and PostgreSQL.
    assert "server_tls_sslmode = require" in ini.splitlines()
    assert secret["users.txt"] == '"mc" "pw-4242"\n'
    pooled = [name for name in _by_kind(manifests, "Deployment") if name in {"mc-api", "mc-beat"} or "-worker-" in name]
    assert len(pooled) == 7
    for name in pooled:
        env = _env(_container(_by_kind(manifests, "Deployment")[name]))
        assert env["MC_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "mc-pgbouncer",
            "key": "database-url",
            "optional": False,
        }, name
        assert env["MC_DB_PGBOUNCER"]["value"] == "true", name
    migrate = _env(_container(_by_kind(manifests, "Job")["mc-migrate"]))
    assert migrate["MC_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "mc-secrets"
    assert "MC_DB_PGBOUNCER" not in migrate
    deployment = _by_kind(manifests, "Deployment")["mc-pgbouncer"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "mc-pgbouncer"


def test_pgbouncer_metrics_exporter_reads_the_admin_database(render: Callable[..., Manifests]) -> None:
    manifests = render(VALUES["pgbouncer"])
    secret = _secret_data(_by_kind(manifests, "Secret")["mc-pgbouncer"])
    assert secret["stats-url"] == "postgres://mc:pw-4242@127.0.0.1:6543/pgbouncer?sslmode=disable"
    assert "stats_users = mc" in secret["pgbouncer.ini"].splitlines()
    pod = _by_kind(manifests, "Deployment")["mc-pgbouncer"]["spec"]["template"]
    exporter = {c["name"]: c for c in pod["spec"]["containers"]}["metrics"]
    assert _env(exporter)["PGBOUNCER_EXPORTER_CONNECTION_STRING"]["valueFrom"]["secretKeyRef"] == {
        "name": "mc-pgbouncer",
        "key": "stats-url",
    }
    monitor = _by_kind(manifests, "PodMonitor")["mc-pgbouncer"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    policy = _by_kind(manifests, "NetworkPolicy")["mc-pgbouncer-metrics"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": 9127, "protocol": "TCP"}]


def test_behind_pgbouncer_the_api_environment_turns_off_session_state(
    render: Callable[..., Manifests], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render(VALUES["pgbouncer"])
    secret = _secret_data(_by_kind(manifests, "Secret")["mc-pgbouncer"])
    env = _env(_container(_by_kind(manifests, "Deployment")["mc-api"]))
    monkeypatch.setenv("MC_DATABASE_URL", secret[env["MC_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"]])
    monkeypatch.setenv("MC_DB_PGBOUNCER", env["MC_DB_PGBOUNCER"]["value"])
    assert read_environment().db_pgbouncer is True


def test_pgbouncer_with_an_existing_secret_needs_its_config_secret(helm: str, render: Callable[..., Manifests]) -> None:
    result = run(
        [helm, "template", "mc", str(CHART), "-f", str(VALUES["production"][0]), "--set", "pgbouncer.enabled=true"]
    )
    assert result.returncode != 0
    assert "pgbouncer.configSecretName: with secrets.existingSecret" in result.stderr
    manifests = render(VALUES["production"], "pgbouncer.enabled=true", "pgbouncer.configSecretName=mc-pgbouncer-prod")
    assert "mc-pgbouncer" not in _by_kind(manifests, "Secret")
    env = _env(_container(_by_kind(manifests, "Deployment")["mc-api"]))
    assert env["MC_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "mc-pgbouncer-prod"
    deployment = _by_kind(manifests, "Deployment")["mc-pgbouncer"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == "mc-pgbouncer-prod"


def test_network_policy_lets_mc_pods_reach_pgbouncer(render: Callable[..., Manifests]) -> None:
    policy = _by_kind(render(VALUES["pgbouncer"]), "NetworkPolicy")["mc-pgbouncer"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "pgbouncer"
    rule = policy["spec"]["ingress"][0]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "mc"}}}]
    assert rule["ports"] == [{"port": 6543, "protocol": "TCP"}]
