#!/usr/bin/env bash
# The local demo of the whole system, without Docker: a real kube-apiserver and etcd on
# loopback, the operator and the router as local processes, a real local inference engine
# (llama.cpp's OpenAI-compatible server with a tiny random-weight model generated here, when
# hack/build-inference.sh has installed it; a fake Ollama otherwise) and two fake providers
# playing a cloud OpenAI and a flaky vLLM. It applies providers and a policy, sends
# requests through the router with curl and the openai SDK, then breaks a provider and shows
# the failover and the circuit opening. Ctrl-C stops everything it started.
#
#   hack/demo.sh            run, then keep everything up until Ctrl-C
#   hack/demo.sh --no-wait  run the show and stop at once (used by the tests)
#   hack/demo.sh --node     the same story with pods on a real node (hack/demo-node.sh)
if [[ "${1:-}" == --node ]]; then
  exec bash "$(dirname "${BASH_SOURCE[0]}")/demo-node.sh" "${@:2}"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$HACK_DIR/lib/python.sh"
source "$HACK_DIR/lib/inference.sh"
export SIGNALBOX_CLUSTER="${SIGNALBOX_CLUSTER:-demo}"
NS=signalbox-demo
WAIT=1
[[ "${1:-}" == --no-wait ]] && WAIT=0
RUN="$(mktemp -d "${TMPDIR:-/tmp}/signalbox-demo.XXXXXX")"
PIDS=()

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
kc() { kubectl "$@" 2> >(grep -v 'version difference' >&2); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cleanup() {
  trap - EXIT INT TERM
  step "stopping everything the demo started"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$HACK_DIR/cluster.sh" down >/dev/null 2>&1 || true
  rm -rf "$RUN"
  log "done; nothing is left running"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

background() {  # background NAME CMD...
  local name="$1"; shift
  PYTHONPATH="$REPO_ROOT/operator:$REPO_ROOT/router" "$@" >"$RUN/$name.log" 2>&1 &
  PIDS+=($!)
}

step "Python environment"
ensure_venv
use_kubectl  # kubectl of the API server's own version (built once)
step "local control plane (the first run builds kube-apiserver and etcd from the Go module proxy: about 8 minutes on 2 cores)"
KUBECONFIG="$("$HACK_DIR/cluster.sh" up | tail -1)"
export KUBECONFIG
kc apply --server-side --force-conflicts -f "$REPO_ROOT/crds" >/dev/null
kc wait --for=condition=Established --timeout=30s crd/llmproviders.signalbox.dev crd/routingpolicies.signalbox.dev >/dev/null
kc create namespace "$NS" --dry-run=client -o yaml | kc apply -f - >/dev/null

CLOUD_PORT="$(free_port)"; LOCAL_PORT="$(free_port)"; FLAKY_PORT="$(free_port)"; ROUTER_PORT="$(free_port)"
LLAMA_VENV="$(llama_cpp_venv)"
if [[ -f "$LLAMA_VENV/.signalbox-installed" ]]; then
  cost="$(cat "$LLAMA_VENV/.signalbox-installed")"
  step "a real local inference engine: llama.cpp's OpenAI-compatible server (llama-cpp-python $LLAMA_CPP_PYTHON_VERSION) with a tiny random-weight model"
  echo "first-run cost: hack/build-inference.sh built llama.cpp from source once${cost:+ in ${cost}s} (about 4 minutes on two idle cores); cached in $LLAMA_VENV"
  "$PY" "$HACK_DIR/tiny_models.py" "$RUN/models" >/dev/null
  echo "model: $RUN/models/tiny-chat.gguf (2 layers, 64 dims, 512 tokens, written by hack/tiny_models.py; it answers random words)"
  background llama-cpp "$LLAMA_VENV/bin/python" -m llama_cpp.server --model "$RUN/models/tiny-chat.gguf" \
    --model_alias tiny-chat --n_ctx 512 --n_threads 1 --host 127.0.0.1 --port "$LOCAL_PORT"
  LOCAL_TYPE=OpenAICompatible LOCAL_URL="http://127.0.0.1:$LOCAL_PORT/v1" LOCAL_MODEL=tiny-chat LOCAL_WHAT="llama.cpp"
else
  step "a local provider: a fake Ollama (no real inference engine is installed)"
  echo "hack/build-inference.sh llama-cpp installs llama.cpp's server once (first run: builds llama.cpp from source, about 4 minutes on two idle cores); the demo then runs it with a tiny model"
  background fake-local "$PY" -m signalbox_fake --flavor ollama --name local-llama \
    --host 127.0.0.1 --port "$LOCAL_PORT" --model llama3.2:3b
  LOCAL_TYPE=Ollama LOCAL_URL="http://127.0.0.1:$LOCAL_PORT" LOCAL_MODEL=llama3.2:3b LOCAL_WHAT="fake Ollama"
fi

step "two fake providers on loopback"
export DEMO_CLOUD_KEY="sk-demo-$RANDOM$RANDOM"
background fake-cloud "$PY" -m signalbox_fake --flavor openai --name cloud \
  --host 127.0.0.1 --port "$CLOUD_PORT" --model gpt-4o-mini --api-key-env DEMO_CLOUD_KEY
background fake-flaky "$PY" -m signalbox_fake --flavor vllm --name flaky-vllm \
  --host 127.0.0.1 --port "$FLAKY_PORT" --model meta-llama/Llama-3.1-8B-Instruct
echo "cloud (OpenAI) :$CLOUD_PORT   local ($LOCAL_WHAT) :$LOCAL_PORT   flaky (vLLM) :$FLAKY_PORT"

step "kubectl apply: a Secret, three LLMProviders and a RoutingPolicy"
kc apply -n "$NS" -f - <<YAML
apiVersion: v1
kind: Secret
metadata: {name: cloud-credentials}
stringData: {api-key: "$DEMO_CLOUD_KEY"}
---
apiVersion: signalbox.dev/v1alpha1
kind: LLMProvider
metadata: {name: flaky-vllm}
spec:
  type: VLLM
  endpoint: {url: "http://127.0.0.1:$FLAKY_PORT/v1"}
  priority: 10
  models: [{name: meta-llama/Llama-3.1-8B-Instruct, capabilities: [chat, streaming, tools]}]
  healthCheck: {interval: 2s, timeout: 1s, unhealthyThreshold: 2}
  circuitBreaker: {failureThreshold: 2, openDuration: 30s}
---
apiVersion: signalbox.dev/v1alpha1
kind: LLMProvider
metadata: {name: local-llama}
spec:
  type: $LOCAL_TYPE
  endpoint: {url: "$LOCAL_URL"}
  priority: 20
  models: [{name: "$LOCAL_MODEL", capabilities: [chat, streaming]}]
  healthCheck: {interval: 2s, timeout: 1s}
---
apiVersion: signalbox.dev/v1alpha1
kind: LLMProvider
metadata: {name: cloud}
spec:
  type: OpenAI
  endpoint: {url: "http://127.0.0.1:$CLOUD_PORT/v1"}
  auth: {secretRef: {name: cloud-credentials, key: api-key}}
  priority: 30
  models:
    - name: gpt-4o-mini
      capabilities: [chat, streaming, tools, jsonMode]
      cost: {inputPerMTok: "0.15", outputPerMTok: "0.60"}
  healthCheck: {interval: 2s, timeout: 1s}
---
apiVersion: signalbox.dev/v1alpha1
kind: RoutingPolicy
metadata: {name: chat-default}
spec:
  models: [chat-default]
  providers: [{name: flaky-vllm}, {name: local-llama}, {name: cloud}]
  strategy: Priority
  failover: {maxAttempts: 3}
YAML

REDIS_ARGS=()
if command -v redis-server >/dev/null 2>&1; then
  step "redis-server on loopback (router replicas share rate limits and cached answers there)"
  REDIS_PORT="$(free_port)"
  mkdir -p "$RUN/redis"
  background redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" \
    --save "" --appendonly no
  REDIS_ARGS=(--redis-url "redis://127.0.0.1:$REDIS_PORT/0")
else
  log "redis-server is not installed (apt-get install redis-server): limits stay per router"
fi

step "operator and router (Kubernetes mode) as local processes"
background operator "$PY" -m signalbox_operator -n "$NS" --metrics-port 0 --lease-namespace "$NS"
background router "$PY" -m signalbox_router -n "$NS" --port "$ROUTER_PORT" "${REDIS_ARGS[@]}"
kc wait -n "$NS" --for=condition=Ready --timeout=60s llmp/flaky-vllm llmp/local-llama llmp/cloud >/dev/null
for _ in $(seq 50); do curl -fsS "127.0.0.1:$ROUTER_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
policies_caught_up "$PY" -n "$NS"

step "kubectl get llmp,llmrp -n $NS"
kc get llmp,llmrp -n "$NS" -o wide

step "a request with curl (response headers name the provider)"
curl -sS -D "$RUN/headers" "127.0.0.1:$ROUTER_PORT/v1/chat/completions" \
  -H 'content-type: application/json' \
  -d '{"model": "chat-default", "messages": [{"role": "user", "content": "Where does this go?"}]}'
echo; grep -i '^x-signalbox' "$RUN/headers"

step "the local engine ($LOCAL_WHAT) answering through the router (model $LOCAL_MODEL)"
curl -sS "127.0.0.1:$ROUTER_PORT/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model": "'"$LOCAL_MODEL"'", "max_tokens": 12, "messages": [{"role": "user", "content": "Say something"}]}'
echo

step "the same with the openai SDK, streaming"
"$PY" - "$ROUTER_PORT" "$LOCAL_MODEL" <<'PY'
import sys, openai
client = openai.OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key="unused")
stream = client.chat.completions.create(model="chat-default", stream=True,
    messages=[{"role": "user", "content": "Stream me a reply"}])
print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
# llama.cpp's server sends no usage on streams: the router meters its own estimate instead.
stream = client.chat.completions.create(model=sys.argv[2], stream=True, max_tokens=12,
    messages=[{"role": "user", "content": "Stream me a reply"}])
print(f"{sys.argv[2]}:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))
PY

step "breaking flaky-vllm (it now answers HTTP 503)"
curl -sS -X PUT "127.0.0.1:$FLAKY_PORT/_fake/faults" -d '{"status": 503}' >/dev/null
for i in 1 2 3; do
  curl -sS -D "$RUN/headers" -o /dev/null "127.0.0.1:$ROUTER_PORT/v1/chat/completions" \
    -H 'content-type: application/json' \
    -d '{"model": "chat-default", "max_tokens": 16, "messages": [{"role": "user", "content": "still there?"}]}'
  printf 'request %s served by %s after %s attempt(s)\n' "$i" \
    "$(awk -F': ' 'tolower($1)=="x-signalbox-provider"{print $2}' "$RUN/headers" | tr -d '\r')" \
    "$(awk -F': ' 'tolower($1)=="x-signalbox-attempts"{print $2}' "$RUN/headers" | tr -d '\r')"
done
for _ in $(seq 40); do
  [[ "$(kc get llmp flaky-vllm -n "$NS" -o jsonpath='{.status.circuit.state}')" == Open ]] && break
  sleep 0.5
done

policies_caught_up "$PY" -n "$NS"
step "kubectl get llmp,llmrp -n $NS (the circuit of flaky-vllm is open)"
kc get llmp,llmrp -n "$NS"
step "kubectl get events -n $NS"
kc get events -n "$NS" --field-selector involvedObject.name=flaky-vllm \
  -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message
step "router usage summary (GET /v1/usage; estimated_tokens: counted by the router where the upstream sent no usage)"
curl -sS "127.0.0.1:$ROUTER_PORT/v1/usage"; echo
step "router readiness (GET /readyz; shared_budgets: limits shared through Redis)"
curl -sS "127.0.0.1:$ROUTER_PORT/readyz"; echo

if [[ "$WAIT" == 1 ]]; then
  step "everything keeps running; Ctrl-C stops it"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  router: http://127.0.0.1:$ROUTER_PORT/v1   logs: $RUN"
  while true; do sleep 3600; done
fi
