"""Scale benchmark of the operator (not a test): N LLMProviders against a few fake providers.

    .venv/bin/python hack/bench_operator.py --providers 1000 5000 [--interval 10] [--steady 60]
    .venv/bin/python hack/bench_operator.py --providers 15000 --replicas 3 --shards 6

For each N it starts a fresh namespace and operator process (or ``--replicas`` of them, sharing
``--shards`` shards) on a local control plane (bench), applies N providers at once, and
measures:
- seconds from the last create until every provider is Ready (target: <= 2 probe intervals),
- the operator's resident memory once all are Ready (target at 1,000: <= 300 MB); with
  replicas, the largest replica's and all of them together,
- status writes per provider per minute in steady state (target: <= 1),
- API server requests per second in steady state, read from the API server's own metrics,
- the probes the fake providers received in steady state: per second in all, and the most any
  one fake received in one second (the providers on one fake share their probes),
- the leases (or shards) the operator lost and the status writes that timed out, read from its
  log; with shards, how the shards were spread and how many providers each replica probed.
Fake providers run as separate processes. It prints a table and one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator"), str(REPO / "router")]

from tests.support import cluster as clusters  # noqa: E402
from tests.support.operator import OperatorProcess, free_port, wait_for  # noqa: E402

INTERVAL = 10.0  # seconds between probes (--interval)
MODEL = "gpt-4o-mini"


def start_fakes(count: int) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    """Fake providers, each a process of its own."""
    urls, procs = [], []
    for i in range(count):
        host = f"127.0.1.{i + 1}"
        port = free_port(host)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "signalbox_fake",
                    "--flavor",
                    "openai",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--model",
                    MODEL,
                ],
                env={**os.environ, "PYTHONPATH": f"{REPO / 'router'}:{REPO / 'operator'}"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        urls.append(f"http://{host}:{port}/v1")
    for url in urls:
        wait_for(lambda u=url: _up(u), 20, f"fake provider at {url}")  # type: ignore[misc]
    return urls, procs


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/models", timeout=1):  # noqa: S310 (loopback)
            return True
    except OSError:
        return False


def providers(n: int, fakes: list[str], interval: float) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "signalbox.dev/v1alpha1",
            "kind": "LLMProvider",
            "metadata": {"name": f"p{i:04d}", "labels": {"bench": "yes"}},
            "spec": {
                "type": "OpenAICompatible",
                "endpoint": {"url": fakes[i % len(fakes)]},
                "models": [{"name": MODEL}],
                "healthCheck": {"interval": f"{interval:g}s", "timeout": "5s"},
            },
        }
        for i in range(n)
    ]


def create_all(api: Any, namespace: str, items: list[dict[str, Any]]) -> None:
    """Create the providers, 16 requests at a time (``kubectl apply`` makes them one by one:
    15,000 took longer than ten minutes)."""

    def create(item: dict[str, Any]) -> None:
        for attempt in range(5):  # a busy API server times out now and then: try again
            try:
                api.create_namespaced_custom_object(
                    "signalbox.dev", "v1alpha1", namespace, "llmproviders", item
                )
                return
            except kubernetes.client.ApiException as exc:
                if exc.status == 409:  # created by the attempt that timed out
                    return
                if attempt == 4:
                    raise
            except OSError:
                if attempt == 4:
                    raise
            time.sleep(1)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(create, items))


def ready_count(api: Any, namespace: str) -> int:
    """Providers whose Ready condition is True, listed 500 at a time (one LIST of 15,000
    objects timed out on a busy API server); -1 when a page fails (the next poll tries again)."""
    ready, token = 0, None
    try:
        while True:
            page = api.list_namespaced_custom_object(
                "signalbox.dev", "v1alpha1", namespace, "llmproviders", limit=500, _continue=token
            )
            ready += sum(
                1
                for item in page["items"]
                for c in item.get("status", {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            )
            token = page["metadata"].get("continue")
            if not token:
                return ready
    except (kubernetes.client.ApiException, OSError):
        return -1


def apiserver_requests(cluster: clusters.Cluster) -> float:
    text = cluster.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_request_total{")
    )


def pid(op: OperatorProcess) -> int:
    assert op.proc is not None
    return op.proc.pid


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probes_seen(fakes: list[str], since: float) -> tuple[float, int]:
    """Probes the fakes received since ``since`` (a wall-clock time): per second in all, and
    the most one fake received in one second."""
    total, peak = 0, 0
    for url in fakes:
        root = url.removesuffix("/v1")
        with urllib.request.urlopen(root + "/_fake/requests", timeout=10) as resp:  # noqa: S310
            seen = json.load(resp)["requests"]
        times = [r["at"] for r in seen if r["at"] >= since and r["path"].endswith("/models")]
        total += len(times)
        per_second: dict[int, int] = {}
        for t in times:
            per_second[int(t)] = per_second.get(int(t), 0) + 1
        peak = max([peak, *per_second.values()])
    return total / max(time.time() - since, 1e-9), peak


def run(
    cluster: clusters.Cluster,
    n: int,
    fakes: list[str],
    steady: float,
    logs: Path,
    *,
    interval: float = INTERVAL,
    replicas: int = 1,
    shards: int = 1,
) -> dict[str, Any]:
    namespace = cluster.create_namespace(f"bench-{n}")
    client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        str(cluster.kubeconfig)
    )
    api = kubernetes.client.CustomObjectsApi(client)
    extra = ["--shards", str(shards)] if shards > 1 else []
    ops = []
    for r in range(replicas):
        log = logs / f"operator-{n}-{r}.log"
        log.unlink(missing_ok=True)  # the counts below read this run's lines only
        ops.append(OperatorProcess(cluster, namespace, log, identity=f"bench-{r}", extra=extra))
    for op in ops:
        op.start()
    writes_metric = 'signalbox_status_writes_total{kind="llmproviders"}'

    def writes_of(op: OperatorProcess) -> float:
        # a scrape that times out under load is tried again, never read as zero
        return wait_for(lambda: op.metric(writes_metric), 60, "the operator's metrics")

    def writes() -> float:
        return sum(writes_of(op) for op in ops)

    try:
        for op in ops:
            wait_for(op.metrics, 30, "operator metrics")
        create_all(api, namespace, providers(n, fakes, interval))
        applied = time.monotonic()
        wait_for(
            lambda: ready_count(api, namespace) == n,
            10 * interval + n / 5,
            f"{n} providers Ready",
            every=max(2.0, n / 2000),  # the polls' own load stays small beside the operator's
        )
        to_ready = time.monotonic() - applied
        memory = [rss_mb(pid(op)) for op in ops]
        writes0 = writes()
        requests0 = apiserver_requests(cluster)
        steady_from = time.time()
        time.sleep(steady)
        probes_per_s, peak = probes_seen(fakes, steady_from)
        written = writes() - writes0
        requests = apiserver_requests(cluster) - requests0 - 1  # minus our own metrics read
        logs_text = [op.log() for op in ops]
        row: dict[str, Any] = {
            "providers": n,
            "replicas": replicas,
            "shards": shards,
            "seconds_to_all_ready": round(to_ready, 1),
            "intervals_to_all_ready": round(to_ready / interval, 2),
            "operator_rss_mb": round(max(memory), 1),
            "steady_writes_per_provider_per_min": round(written / n / (steady / 60), 3),
            "apiserver_requests_per_s": round(requests / steady, 2),
            "operator_rss_mb_end": round(max(rss_mb(pid(op)) for op in ops), 1),
            "probes_per_s_all_fakes": round(probes_per_s, 2),
            "peak_probes_in_one_second_at_one_fake": peak,
            # Each term after the first began with a lost lease ("stopping all work"); a shard
            # lost without being handed over says "lost shard".
            "lease_losses": sum(
                t.count("stopping all work") + t.count("lost shard") for t in logs_text
            ),
            "status_write_timeouts": sum(t.count("not written: TimeoutError") for t in logs_text),
        }
        if replicas > 1:
            row["rss_mb_all_replicas"] = round(sum(memory), 1)
            row["probe_loops_per_replica"] = [
                int(op.metric("signalbox_probers") or 0) for op in ops
            ]
        return row
    finally:
        for op in ops:
            op.stop()
        api.delete_collection_namespaced_custom_object(  # one call, not one per provider
            "signalbox.dev", "v1alpha1", namespace, "llmproviders"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--providers", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--fakes", type=int, default=4)
    parser.add_argument("--steady", type=float, default=60.0, help="seconds of steady state")
    parser.add_argument("--interval", type=float, default=INTERVAL, help="probe interval, s")
    parser.add_argument("--replicas", type=int, default=1, help="operator processes")
    parser.add_argument("--shards", type=int, default=1, help="shards the replicas share")
    parser.add_argument(
        "--logs", type=Path, default=Path(tempfile.gettempdir()) / "signalbox-bench"
    )
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    cluster = clusters.start("bench")
    fakes, procs = start_fakes(args.fakes)
    try:
        rows = [
            run(
                cluster,
                n,
                fakes,
                args.steady,
                args.logs,
                interval=args.interval,
                replicas=args.replicas,
                shards=args.shards,
            )
            for n in args.providers
        ]
    finally:
        for proc in procs:
            proc.terminate()
        clusters.stop("bench")
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))
    print(json.dumps({"interval_s": args.interval, "results": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
