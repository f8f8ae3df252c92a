#!/usr/bin/env bash
# The demo on a real node (`hack/demo.sh --node`): the same story as hack/demo.sh, with pods.
# hack/node.sh starts one node without Docker, hack/node-images.sh builds the operator, router
# and fake-provider images here, Helm installs charts/signalbox, and the in-cluster "vLLM" (3
# pods asking for a fake nvidia.com/gpu), "Ollama" and "cloud" fakes run as Deployments. It
# sends requests through the router pods with curl and the openai SDK (over kubectl
# port-forward), then scales vLLM to zero and shows the traffic spilling to the cloud.
#
#   hack/demo.sh --node            run, then keep everything up until Ctrl-C
#   hack/demo.sh --node --no-wait  run the show and stop at once
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
export SIGNALBOX_CLUSTER="${SIGNALBOX_CLUSTER:-demo-node}"
NS=signalbox-demo
WAIT=1
[[ "${1:-}" == --no-wait ]] && WAIT=0
RUN="$(mktemp -d "${TMPDIR:-/tmp}/signalbox-demo.XXXXXX")"
PF_PID=""

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
kc() { kubectl -n "$NS" "$@" 2> >(grep -v 'version difference' >&2); }

cleanup() {
  trap - EXIT INT TERM
  step "stopping everything the demo started"
  [[ -z "$PF_PID" ]] || kill "$PF_PID" 2>/dev/null || true
  "$HACK_DIR/node.sh" down >/dev/null 2>&1 || true
  rm -rf "$RUN"
  log "done; nothing is left running"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Python environment"
ensure_venv
use_kubectl  # kubectl of the API server's own version (built once)
step "one node: containerd, kubelet, kube-proxy, CoreDNS (the first run builds them: about 25 minutes on two cores)"
t=$SECONDS
KUBECONFIG="$("$HACK_DIR/node.sh" up | tail -1)"
export KUBECONFIG
echo "node up in $((SECONDS - t))s"
step "images, built here without Docker (the first run: about 10 minutes)"
t=$SECONDS
mapfile -t archives < <("$HACK_DIR/node-images.sh" | awk '{print $2}')
"$HACK_DIR/node.sh" import "$SIGNALBOX_CLUSTER" "${archives[@]}"
for a in "${archives[@]}"; do printf '  %s  %s\n' "$(numfmt --to=iec --suffix=B "$(stat -L -c %s "$a")")" "$a"; done
echo "images ready in $((SECONDS - t))s"

step "helm install signalbox (2 operator pods, one leads; 2 router pods)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
KEY="sk-demo-$RANDOM$RANDOM"
kc create secret generic demo-client-keys --from-literal=api-keys="$KEY" --dry-run=client -o yaml | kc apply -f - >/dev/null
HELM="$("$HACK_DIR/build-binaries.sh" helm | awk '{print $2}')"
# no --wait: a router is Ready once it has an eligible provider, applied below
"$HELM" upgrade --install signalbox "$REPO_ROOT/charts/signalbox" -n "$NS" \
  --set image.registry=signalbox.local --set image.tag=dev --set image.pullPolicy=Never \
  --set operator.replicas=2 --set router.clientAuth.existingSecret=demo-client-keys >/dev/null

step "in-cluster vLLM (3 pods, 1 fake GPU each), Ollama and a cloud fake; LLMProviders and a RoutingPolicy"
cd "$REPO_ROOT"
"$PY" - "$NS" >"$RUN/workloads.yaml" <<'PY'
import secrets, sys, yaml
from tests.e2e import workloads
print(yaml.safe_dump_all([*workloads.backends(f"sk-cloud-{secrets.token_hex(8)}"), *workloads.providers(sys.argv[1])]))
PY
kc apply -f "$RUN/workloads.yaml" >/dev/null
kc rollout status deploy/vllm deploy/ollama deploy/cloud deploy/signalbox-operator \
  deploy/signalbox-router --timeout=300s >/dev/null
kc wait --for=condition=Ready --timeout=90s llmp/vllm llmp/ollama llmp/cloud >/dev/null
policies_caught_up "$PY" -n "$NS"

step "kubectl get pods,llmp,llmrp -n $NS"
kc get pods,llmp,llmrp -o wide

kc port-forward svc/signalbox-router :80 --address 127.0.0.1 >"$RUN/port-forward.log" 2>&1 &
PF_PID=$!
for _ in $(seq 50); do grep -q 'Forwarding from' "$RUN/port-forward.log" && break; sleep 0.2; done
PORT="$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$RUN/port-forward.log" | head -1)"

step "requests with curl through the router pods (headers name the provider; replies the pod)"
for i in 1 2 3 4 5 6; do
  curl -sS -D "$RUN/headers" "127.0.0.1:$PORT/v1/chat/completions" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' \
    -d '{"model": "chat-default", "messages": [{"role": "user", "content": "hi"}]}' >"$RUN/body"
  printf 'request %s: provider %s, %s\n' "$i" \
    "$(awk -F': ' 'tolower($1)=="x-signalbox-provider"{print $2}' "$RUN/headers" | tr -d '\r')" \
    "$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"].split(" You said")[0])' <"$RUN/body")"
done

step "the same with the openai SDK, streaming"
"$PY" - "$PORT" "$KEY" <<'PY'
import sys, openai
client = openai.OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key=sys.argv[2])
stream = client.chat.completions.create(model="chat-default", stream=True,
    messages=[{"role": "user", "content": "Stream me a reply"}])
print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
PY

step "kubectl scale deploy/vllm --replicas=0 (the in-cluster vLLM goes away)"
kc scale deploy/vllm --replicas=0 >/dev/null
for _ in $(seq 120); do
  [[ "$(kc get llmp vllm -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == False ]] && break
  sleep 0.5
done
policies_caught_up "$PY" -n "$NS"
kc get pods,llmp,llmrp
for i in 1 2 3; do
  curl -sS -D "$RUN/headers" -o /dev/null "127.0.0.1:$PORT/v1/chat/completions" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' \
    -d '{"model": "chat-default", "messages": [{"role": "user", "content": "still there?"}]}'
  printf 'request %s served by %s\n' "$i" \
    "$(awk -F': ' 'tolower($1)=="x-signalbox-provider"{print $2}' "$RUN/headers" | tr -d '\r')"
done

if [[ "$WAIT" == 1 ]]; then
  step "everything keeps running; Ctrl-C stops it"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  router: http://127.0.0.1:$PORT/v1 (api key $KEY)   node logs: $SIGNALBOX_CACHE/nodes/$SIGNALBOX_CLUSTER/logs"
  while true; do sleep 3600; done
fi
