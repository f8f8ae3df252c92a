#!/usr/bin/env bash
# For users with Docker: a kind cluster running Signalbox from locally built images.
#
#   hack/kind-up.sh          create the cluster (if needed), build and load both images,
#                            install the chart and the samples into namespace "signalbox"
#   hack/kind-up.sh down     delete the cluster
#
# Needs docker and kind on PATH (kind: `go install sigs.k8s.io/kind@v0.30.0`); helm is built
# from the Go module proxy like the other tools if it is not installed.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CLUSTER="${KIND_CLUSTER:-signalbox}"
NS="${SIGNALBOX_NAMESPACE:-signalbox}"
TAG="${SIGNALBOX_TAG:-dev}"

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"; }

if [[ "${1:-}" == down ]]; then
  need kind "go install sigs.k8s.io/kind@v0.30.0"
  kind delete cluster --name "$CLUSTER"
  exit 0
fi

need docker "https://docs.docker.com/engine/install/"
need kind "go install sigs.k8s.io/kind@v0.30.0"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
docker info >/dev/null 2>&1 || die "the Docker engine is not running"
HELM="$(command -v helm || true)"
if [[ -z "$HELM" ]]; then
  HELM="$(bash "$HACK_DIR/build-binaries.sh" helm | awk '{print $2}')"
fi

if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

for component in operator router; do
  image="ghcr.io/signalbox-dev/$component:$TAG"
  log "building $image"
  docker build -f "$REPO_ROOT/$component/Dockerfile" -t "$image" "$REPO_ROOT"
  kind load docker-image --name "$CLUSTER" "$image"
done

log "installing the chart into namespace $NS"
"$HELM" upgrade --install signalbox "$REPO_ROOT/charts/signalbox" \
  --namespace "$NS" --create-namespace \
  --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set watchNamespaces="{$NS}" --set router.namespace="$NS" --wait --timeout 5m

log "applying the samples"
kubectl apply -n "$NS" -f "$REPO_ROOT/crds/samples/"
kubectl get llmp,llmrp -n "$NS"
log "router: kubectl port-forward -n $NS svc/signalbox-router 8080:80"
log "client key: kubectl get secret -n $NS signalbox-router-client-keys -o jsonpath='{.data.api-keys}' | base64 -d"
