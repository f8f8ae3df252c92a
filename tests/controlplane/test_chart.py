"""The Helm chart: lint, render, validate on the real API server, install, upgrade, RBAC."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support import tools
from tests.support.cluster import REPO, Cluster

CHART = REPO / "charts" / "signalbox"
# The Kubernetes version offline rendering assumes (the test cluster's own minor).
KUBE = ["--kube-version", "v1.35.0"]
FULL = CHART / "values-full.yaml"


@pytest.fixture(scope="session")
def helm() -> Path:
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "build-binaries.sh"), "helm"],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"could not build helm:\n{proc.stderr[-3000:]}", pytrace=False)
    return Path(proc.stdout.split()[-1])


def run_helm(helm: Path, cluster: Cluster | None, *args: str) -> str:
    env = cluster.env if cluster else None
    proc = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stderr}{proc.stdout}"
    return proc.stdout


@pytest.fixture(scope="session")
def monitoring_crds(cluster: Cluster) -> None:
    """prometheus-operator's own ServiceMonitor and PrometheusRule CRDs, from its Go module."""
    crds = tools.built("monitoring-crds")
    for kind in ("servicemonitors", "prometheusrules"):
        cluster.kubectl("apply", "--server-side", "-f", str(crds / f"{kind}.yaml"))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
    )


def test_lint(helm: Path) -> None:
    out = run_helm(helm, None, "lint", "--strict", *KUBE, str(CHART))
    assert "0 chart(s) failed" in out
    run_helm(helm, None, "lint", "--strict", *KUBE, str(CHART), "-f", str(FULL))


def _refused(helm: Path, value: str) -> str:
    """What helm says when the chart's schema refuses ``--set value``."""
    proc = subprocess.run(
        [str(helm), "template", "x", str(CHART), *KUBE, "--set", value],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    return proc.stderr


def test_values_schema_rejects_bad_values(helm: Path) -> None:
    assert "replicas" in _refused(helm, "operator.replicas=9")
    assert "shards" in _refused(helm, "operator.shards=0")


def _operator_args(rendered: str) -> list[str]:
    dep = next(
        d
        for d in _docs(rendered)
        if d["kind"] == "Deployment" and str(d["metadata"]["name"]).endswith("-operator")
    )
    args: list[str] = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


def test_operator_shards_only_when_asked(helm: Path) -> None:
    plain = run_helm(helm, None, "template", "sb", str(CHART), *KUBE)
    assert not [a for a in _operator_args(plain) if a.startswith("--shards")]
    full = run_helm(helm, None, "template", "sb", str(CHART), *KUBE, "-f", str(FULL))
    assert "--shards=6" in _operator_args(full)


def _docs(rendered: str) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


@pytest.mark.parametrize("values", [None, FULL], ids=["default", "full"])
def test_rendered_manifests_pass_server_side_validation(
    helm: Path, cluster: Cluster, namespace: str, monitoring_crds: None, values: Path | None
) -> None:
    extra = ["-f", str(values)] if values else []
    for ns in ("team-a", "team-b"):
        cluster.kubectl("create", "namespace", ns, check=False)
    rendered = run_helm(helm, None, "template", "sb", str(CHART), "-n", namespace, *KUBE, *extra)
    kinds = {str(d["kind"]) for d in _docs(rendered)}
    assert {"CustomResourceDefinition", "Deployment", "ClusterRole", "Role", "Service"} <= kinds
    if values:
        assert {
            "ServiceMonitor",
            "PrometheusRule",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "ConfigMap",
        } <= kinds
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False)
    assert proc.returncode == 0, proc.stderr


def test_monitoring_crds_reject_what_prometheus_operator_rejects(
    cluster: Cluster, namespace: str, monitoring_crds: None
) -> None:
    """The CRDs are the real schemas, not an accept-anything stand-in: bad rules are refused."""
    bad_duration = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "1", "for": "5 min"}]}]},
    }
    unknown_field = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "scrapeEvery": "30s"}]},
    }
    for manifest, field in ((bad_duration, "for"), (unknown_field, "scrapeEvery")):
        proc = cluster.kubectl(
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
            stdin=json.dumps(manifest),
            check=False,
        )
        assert proc.returncode != 0, manifest
        assert field in proc.stderr


def test_security_context_is_hardened(helm: Path) -> None:
    rendered = run_helm(helm, None, "template", "sb", str(CHART), *KUBE, "-f", str(FULL))
    deployments = [d for d in _docs(rendered) if d["kind"] == "Deployment"]
    assert len(deployments) == 3  # operator, router, bundled Redis
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault"


def test_prometheus_scrapes_the_routers_metrics_port_not_its_client_port(helm: Path) -> None:
    rendered = run_helm(helm, None, "template", "sb", str(CHART), *KUBE, "-f", str(FULL))
    docs = _docs(rendered)
    router = next(
        d for d in docs if d["kind"] == "Deployment" and "router" in d["metadata"]["name"]
    )
    container = router["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-port=9090" in container["args"]
    assert "--metrics-host=0.0.0.0" in container["args"]
    assert {"name": "metrics", "containerPort": 9090} in container["ports"]
    service = next(d for d in docs if d["metadata"]["name"] == "sb-signalbox-router-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics"}]
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"metrics"}
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    assert any({"port": "metrics"} in rule.get("ports", []) for rule in policy["spec"]["ingress"])
    # Client keys are on, so the metrics port asks for Prometheus's own token, which the
    # ServiceMonitor presents.
    token = "sb-signalbox-router-metrics-token"
    assert "--metrics-token-file=/etc/signalbox/metrics-token/token" in container["args"]
    secret = next(d for d in docs if d["metadata"]["name"] == token)
    assert set(secret["data"]) == {"token"}
    assert [e["authorization"] for e in monitor["spec"]["endpoints"]] == [
        {"type": "Bearer", "credentials": {"name": token, "key": "token"}}
    ]


@pytest.mark.parametrize(
    ("values", "flag"),
    [
        (["router.metricsAuth.enabled=false"], "--no-metrics-auth"),
        (["router.clientAuth.enabled=false"], "--no-client-auth"),
    ],
)
def test_an_open_metrics_port_is_asked_for_in_so_many_words(
    helm: Path, values: list[str], flag: str
) -> None:
    sets = [arg for v in values for arg in ("--set", v)]
    rendered = run_helm(helm, None, "template", "sb", str(CHART), *KUBE, "-f", str(FULL), *sets)
    docs = _docs(rendered)
    router = next(
        d for d in docs if d["kind"] == "Deployment" and "router" in d["metadata"]["name"]
    )
    args = router["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag in args
    assert not any(a.startswith("--metrics-token-file") for a in args)
    assert all(d["metadata"]["name"] != "sb-signalbox-router-metrics-token" for d in docs)
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    assert all("authorization" not in e for e in monitor["spec"]["endpoints"])


@pytest.mark.parametrize("component", ["router", "operator"])
def test_log_level_and_format_are_values(helm: Path, component: str) -> None:
    def args(*sets: str) -> list[str]:
        rendered = run_helm(helm, None, "template", "sb", str(CHART), *KUBE, *sets)
        deployment = next(
            d
            for d in _docs(rendered)
            if d["kind"] == "Deployment" and component in d["metadata"]["name"]
        )
        return list(deployment["spec"]["template"]["spec"]["containers"][0]["args"])

    assert {"--log-level=info", "--log-format=text"} <= set(args())
    chosen = args("--set", f"{component}.logLevel=warning", "--set", f"{component}.logFormat=json")
    assert {"--log-level=warning", "--log-format=json"} <= set(chosen)
    assert "logFormat" in _refused(helm, f"{component}.logFormat=xml")


def _env(rendered: str, component: str) -> dict[str, str]:
    deployment = next(
        d
        for d in _docs(rendered)
        if d["kind"] == "Deployment" and str(d["metadata"]["name"]).endswith(component)
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or ()}


@pytest.mark.parametrize("component", ["router", "operator"])
def test_tracing_is_off_by_default_and_values_set_the_standard_variables(
    helm: Path, component: str
) -> None:
    plain = run_helm(helm, None, "template", "sb", str(CHART), *KUBE)
    assert not [k for k in _env(plain, component) if k.startswith("OTEL_")]
    traced = run_helm(
        helm,
        None,
        "template",
        "sb",
        str(CHART),
        *KUBE,
        "-n",
        "llm",
        "--set",
        "tracing.enabled=true",
        "--set",
        "tracing.endpoint=http://jaeger.tracing:4317",
        "--set",
        "tracing.protocol=grpc",
        "--set",
        "tracing.samplerRatio=0.01",
    )
    env = _env(traced, component)
    assert {k: v for k, v in env.items() if k.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger.tracing:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_SERVICE_NAME": f"signalbox-{component}",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=llm",
    }
    full = _env(
        run_helm(helm, None, "template", "sb", str(CHART), *KUBE, "-f", str(FULL)), "router"
    )
    assert full["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] == "true"
    assert "SIGNALBOX_REDIS_URL" in full  # beside the shared budgets' Redis


def test_tracing_values_are_checked(helm: Path) -> None:
    assert "/tracing/endpoint" in _refused(helm, "tracing.enabled=true")
    assert "/tracing/protocol" in _refused(helm, "tracing.protocol=http/json")
    assert "/tracing/samplerRatio" in _refused(helm, "tracing.samplerRatio=2")


@pytest.fixture
def installed(helm: Path, cluster: Cluster, namespace: str) -> Iterator[str]:
    # The session already installed the CRDs with kubectl, as a platform team might.
    run_helm(
        helm,
        cluster,
        "install",
        "sb",
        str(CHART),
        "-n",
        namespace,
        "--wait=false",
        "--set",
        "crds.install=false",
    )
    yield namespace
    subprocess.run(
        [str(helm), "uninstall", "sb", "-n", namespace],
        env=cluster.env,
        capture_output=True,
        check=False,
    )


def test_install_upgrade_and_rbac(helm: Path, cluster: Cluster, installed: str) -> None:
    ns = installed
    dep = json.loads(
        cluster.kubectl("get", "deploy", "sb-signalbox-operator", "-n", ns, "-o", "json").stdout
    )
    assert dep["spec"]["replicas"] == 1
    run_helm(
        helm,
        cluster,
        "upgrade",
        "sb",
        str(CHART),
        "-n",
        ns,
        "--reuse-values",
        "--set",
        "operator.replicas=2",
    )
    dep = json.loads(
        cluster.kubectl("get", "deploy", "sb-signalbox-operator", "-n", ns, "-o", "json").stdout
    )
    assert dep["spec"]["replicas"] == 2
    rendered = run_helm(helm, None, "template", "sb", str(CHART), *KUBE)
    crds = [d for d in _docs(rendered) if d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 2
    assert all(d["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for d in crds)
    keys = cluster.kubectl(
        "get",
        "secret",
        "sb-signalbox-router-client-keys",
        "-n",
        ns,
        "-o",
        "jsonpath={.data.api-keys}",
    ).stdout
    run_helm(helm, cluster, "upgrade", "sb", str(CHART), "-n", ns, "--reuse-values")
    assert (
        cluster.kubectl(
            "get",
            "secret",
            "sb-signalbox-router-client-keys",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.api-keys}",
        ).stdout
        == keys
    ), "key kept"

    operator = f"system:serviceaccount:{ns}:sb-signalbox-operator"
    router = f"system:serviceaccount:{ns}:sb-signalbox-router"
    cluster.kubectl("create", "namespace", "elsewhere", check=False)
    allowed = [
        (operator, ["list", "llmproviders.signalbox.dev", "-n", ns]),
        (operator, ["watch", "routingpolicies.signalbox.dev", "-n", ns]),
        (operator, ["patch", "llmproviders.signalbox.dev", "--subresource=status", "-n", ns]),
        (operator, ["patch", "routingpolicies.signalbox.dev", "--subresource=status", "-n", ns]),
        (operator, ["create", "events", "-n", ns]),
        (operator, ["list", "secrets", "-n", ns]),
        (operator, ["list", "endpointslices.discovery.k8s.io", "-n", ns]),
        (operator, ["get", "services", "-n", ns]),
        (operator, ["update", "leases.coordination.k8s.io", "-n", ns]),
        (operator, ["list", "leases.coordination.k8s.io", "-n", ns]),
        (router, ["watch", "llmproviders.signalbox.dev", "-n", ns]),
        (router, ["list", "secrets", "-n", ns]),
        (router, ["list", "endpointslices.discovery.k8s.io", "-n", ns]),
    ]
    denied = [
        (operator, ["update", "llmproviders.signalbox.dev", "-n", ns]),
        (operator, ["delete", "llmproviders.signalbox.dev", "-n", ns]),
        (operator, ["get", "secrets", "-n", "elsewhere"]),
        (operator, ["create", "secrets", "-n", ns]),
        (operator, ["update", "leases.coordination.k8s.io", "-n", "elsewhere"]),
        (operator, ["list", "leases.coordination.k8s.io", "-n", "elsewhere"]),
        (operator, ["create", "pods", "-n", ns]),
        (operator, ["update", "services", "-n", ns]),
        (router, ["patch", "llmproviders.signalbox.dev", "--subresource=status", "-n", ns]),
        (router, ["get", "secrets", "-n", "elsewhere"]),
        (router, ["list", "llmproviders.signalbox.dev", "-n", "elsewhere"]),
        (router, ["create", "events", "-n", ns]),
    ]
    for who, check in allowed:
        proc = cluster.kubectl("auth", "can-i", *check, f"--as={who}", check=False)
        assert proc.stdout.strip() == "yes", f"{who} should be allowed to {' '.join(check)}"
    for who, check in denied:
        proc = cluster.kubectl("auth", "can-i", *check, f"--as={who}", check=False)
        assert proc.stdout.strip() == "no", f"{who} must not be allowed to {' '.join(check)}"
