"""Last on the node: `helm uninstall` keeps the CRDs and leaves no other object of the release."""

from __future__ import annotations

from tests.e2e.conftest import Release
from tests.support.node import helm
from tests.support.operator import wait_for


def test_helm_uninstall_keeps_the_crds_and_leaves_nothing_else(release: Release) -> None:
    helm(release.cluster, "uninstall", release.name, "-n", release.namespace, "--wait")
    crds = release.cluster.kubectl("get", "crd", "-o", "name").stdout
    assert "llmproviders.signalbox.dev" in crds
    assert "routingpolicies.signalbox.dev" in crds
    selector = f"app.kubernetes.io/instance={release.name}"
    kinds = "deploy,rs,pods,svc,sa,role,rolebinding,pdb,secret,configmap,lease"
    # pods take their grace period to go
    wait_for(
        lambda: release.kubectl("get", kinds, "-l", selector, "-o", "name").strip() == "",
        90,
        "every object of the release gone",
    )
    cluster_wide = release.cluster.kubectl(
        "get", "clusterrole,clusterrolebinding", "-l", selector, "-o", "name"
    ).stdout
    assert cluster_wide.strip() == ""
