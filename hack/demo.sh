#!/usr/bin/env bash
# The local demo: a real control plane on loopback, the CRDs and the sample providers and
# policies applied, and what `kubectl get llm` shows. Stop it with `hack/demo.sh down`.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
export SIGNALBOX_CLUSTER=demo
NS=signalbox-demo

if [[ "${1:-}" == down ]]; then exec "$HACK_DIR/cluster.sh" down; fi

ensure_venv
log "starting the local control plane (the first run builds kube-apiserver and etcd: ~10 min)"
KUBECONFIG="$("$HACK_DIR/cluster.sh" up | tail -1)"
export KUBECONFIG
kc() { kubectl "$@" 2> >(grep -v 'version difference' >&2); }

log "installing the CRDs"
kc apply --server-side --force-conflicts -f "$REPO_ROOT/crds" >/dev/null
kc wait --for=condition=Established --timeout=30s crd/llmproviders.signalbox.dev crd/routingpolicies.signalbox.dev >/dev/null

log "applying the samples to namespace $NS"
kc create namespace "$NS" --dry-run=client -o yaml | kc apply -f - >/dev/null
kc apply -n "$NS" -f "$REPO_ROOT/crds/samples"

echo
log "kubectl get llm -n $NS"
kc get llm -n "$NS"
echo
log "kubectl explain llmprovider.spec.healthCheck (excerpt)"
kc explain llmprovider.spec.healthCheck | head -20
echo
log "an invalid manifest is refused by the API server:"
kc apply -n "$NS" -f - <<'YAML' || true
apiVersion: signalbox.dev/v1alpha1
kind: LLMProvider
metadata: {name: broken}
spec:
  type: OpenAI
  endpoint: {url: "https://api.example.com/v1", service: {name: svc, port: 80}}
YAML
echo
log "the control plane keeps running; use it with:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "stop it with: hack/demo.sh down"
