#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, without Docker: etcd + kube-apiserver.
#
#   hack/cluster.sh up [NAME]      build the pinned binaries if needed, start both, wait until
#                                  the API server is ready; the last line printed is the admin
#                                  kubeconfig
#   hack/cluster.sh down [NAME]    stop both and remove the cluster's state
#   hack/cluster.sh status [NAME]  say whether it runs; print the kubeconfig path if it does
#   hack/cluster.sh stop-apiserver [NAME]   stop only the API server (etcd keeps the state)
#   hack/cluster.sh start-apiserver [NAME]  start it again, same port and flags; wait for ready
#
# NAME (or SIGNALBOX_CLUSTER; default "default") names the cluster, so a demo and a test run can
# each have their own. SIGNALBOX_AUDIT=1 at `up` writes the API server's audit log of writes to
# leases, Events and status (who, when, which outcome) to $STATE/audit.log. There is no kubelet:
# pods never run, so in-cluster backends are modelled with EndpointSlices that point at
# processes on 127.0.0.x. `hack/cluster.sh up --node [NAME]` (and `down --node`) is hack/node.sh:
# the same control plane plus one real node that runs pods.
#
# hack/node.sh starts its API server through this script with SIGNALBOX_ADVERTISE_ADDRESS,
# SIGNALBOX_SERVICE_CIDR and SIGNALBOX_APISERVER_EXTRA_ARGS (space-separated flags); unset,
# the API server is exactly the loopback one above.
if [[ "${2:-}" == --node ]]; then
  exec bash "$(dirname "${BASH_SOURCE[0]}")/node.sh" "$1" "${@:3}"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CLUSTER="${2:-${SIGNALBOX_CLUSTER:-default}}"
STATE="$SIGNALBOX_CACHE/clusters/$CLUSTER"
KUBECONFIG_PATH="$STATE/kubeconfig"
READY_TIMEOUT="${SIGNALBOX_READY_TIMEOUT:-60}"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_busy() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

alive() { [[ -f "$STATE/$1.pid" ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

api_ready() {
  [[ -f "$STATE/apiserver.port" ]] || return 1
  curl -fsS --max-time 2 -k -H "Authorization: Bearer $(cat "$STATE/admin.token")" \
    "https://127.0.0.1:$(cat "$STATE/apiserver.port")/readyz" >/dev/null 2>&1
}

start_bg() {  # start_bg NAME CMD... : run detached, log to $STATE/NAME.log, remember the pid
  local name="$1"; shift
  setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

write_kubeconfig() {
  local port="$1" ca
  ca="$(base64 -w0 "$STATE/certs/apiserver.crt")"
  cat >"$KUBECONFIG_PATH" <<KC
apiVersion: v1
kind: Config
clusters:
- name: signalbox-$CLUSTER
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $ca
users:
- name: admin
  user:
    token: $(cat "$STATE/admin.token")
contexts:
- name: signalbox-$CLUSTER
  context: {cluster: signalbox-$CLUSTER, user: admin, namespace: default}
current-context: signalbox-$CLUSTER
KC
  chmod 600 "$KUBECONFIG_PATH"
}

fail_start() {
  log "$1; last lines of the logs:"
  for f in etcd apiserver; do
    [[ -f "$STATE/$f.log" ]] && { echo "--- $f.log" >&2; tail -15 "$STATE/$f.log" >&2; }
  done
  down >/dev/null 2>&1 || true
  die "$1 (logs were in $STATE)"
}

up() {
  if alive etcd && alive apiserver && api_ready; then
    log "cluster '$CLUSTER' is already running"
    echo "$KUBECONFIG_PATH"
    return
  fi
  down >/dev/null 2>&1 || true
  local binaries etcd_bin apiserver_bin
  binaries="$(bash "$HACK_DIR/build-binaries.sh" kube-apiserver etcd)" || die "could not build the control-plane binaries"
  apiserver_bin="$(awk '$1=="kube-apiserver"{print $2}' <<<"$binaries")"
  etcd_bin="$(awk '$1=="etcd"{print $2}' <<<"$binaries")"
  local start=$SECONDS
  mkdir -p "$STATE/certs" "$STATE/etcd"
  chmod 700 "$STATE"

  local etcd_port peer_port api_port
  etcd_port="$(free_port)"; peer_port="$(free_port)"
  api_port="${SIGNALBOX_APISERVER_PORT:-$(free_port)}"
  if port_busy "$api_port"; then
    rm -rf "$STATE"
    die "port $api_port is busy (SIGNALBOX_APISERVER_PORT)"
  fi

  head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$STATE/admin.token"
  echo "$(cat "$STATE/admin.token"),admin,admin,system:masters" >"$STATE/tokens.csv"
  openssl genrsa -out "$STATE/certs/sa.key" 2048 2>/dev/null || die "openssl could not make a key"
  openssl rsa -in "$STATE/certs/sa.key" -pubout -out "$STATE/certs/sa.pub" 2>/dev/null

  log "starting etcd on 127.0.0.1:$etcd_port"
  start_bg etcd "$etcd_bin" --name default --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn

  log "starting kube-apiserver on 127.0.0.1:$api_port"
  echo "$api_port" >"$STATE/apiserver.port"
  local api_args=(
    --etcd-servers "http://127.0.0.1:$etcd_port"
    --bind-address 127.0.0.1 --advertise-address "${SIGNALBOX_ADVERTISE_ADDRESS:-127.0.0.1}" --secure-port "$api_port"
    --cert-dir "$STATE/certs" --token-auth-file "$STATE/tokens.csv"
    --authorization-mode RBAC
    --service-account-issuer https://kubernetes.default.svc
    --service-account-key-file "$STATE/certs/sa.pub"
    --service-account-signing-key-file "$STATE/certs/sa.key"
    --service-cluster-ip-range "${SIGNALBOX_SERVICE_CIDR:-10.96.0.0/16}"
    --allow-privileged=true --v 1
  )
  # shellcheck disable=SC2206
  [[ -z "${SIGNALBOX_APISERVER_EXTRA_ARGS:-}" ]] || api_args+=($SIGNALBOX_APISERVER_EXTRA_ARGS)
  if [[ "${SIGNALBOX_AUDIT:-}" == 1 ]]; then
    write_audit_policy
    api_args+=(--audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/audit.log"
      --audit-log-format json --audit-log-mode blocking)
  fi
  echo "$apiserver_bin" >"$STATE/apiserver.bin"
  printf '%s\n' "${api_args[@]}" >"$STATE/apiserver.args"
  start_bg apiserver "$apiserver_bin" "${api_args[@]}"
  wait_ready || fail_start "$(not_ready_reason)"
  write_kubeconfig "$api_port"
  log "cluster '$CLUSTER' ready in $((SECONDS - start))s"
  echo "$KUBECONFIG_PATH"
}

write_audit_policy() {  # writes to leases, Events (whose) and status: who wrote what, when
  cat >"$STATE/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Request
    verbs: [create, update, patch]
    resources:
      - group: coordination.k8s.io
        resources: [leases]
      - group: ""
        resources: [events]
  - level: Metadata
    verbs: [create, update, patch]
    resources:
      - group: signalbox.dev
        resources: [llmproviders/status, routingpolicies/status]
  - level: None
POLICY
}

wait_ready() {  # until the API server answers /readyz; false when it died or took too long
  local deadline=$((SECONDS + READY_TIMEOUT))
  until api_ready; do
    alive etcd || return 1
    alive apiserver || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.25
  done
}

not_ready_reason() {
  if ! alive etcd; then echo "etcd exited"
  elif ! alive apiserver; then echo "kube-apiserver exited"
  else echo "kube-apiserver was not ready within ${READY_TIMEOUT}s"
  fi
}

stop_pid() {  # stop_pid NAME: TERM, wait up to 5 s, then KILL
  local pid
  [[ -f "$STATE/$1.pid" ]] || return 0
  pid="$(cat "$STATE/$1.pid")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

stop_apiserver() {
  [[ -f "$STATE/apiserver.args" ]] || die "cluster '$CLUSTER' is not running"
  stop_pid apiserver
  rm -f "$STATE/apiserver.pid"
  log "kube-apiserver of cluster '$CLUSTER' stopped (etcd keeps running)"
}

start_apiserver() {
  [[ -f "$STATE/apiserver.args" ]] || die "cluster '$CLUSTER' was never started"
  alive etcd || die "etcd of cluster '$CLUSTER' is not running"
  if alive apiserver && api_ready; then
    log "kube-apiserver of cluster '$CLUSTER' is already running"
    return
  fi
  local args
  mapfile -t args <"$STATE/apiserver.args"
  start_bg apiserver "$(cat "$STATE/apiserver.bin")" "${args[@]}"
  wait_ready || die "$(not_ready_reason) (log: $STATE/apiserver.log)"
  log "kube-apiserver of cluster '$CLUSTER' is ready again"
}

down() {
  for name in apiserver etcd; do
    stop_pid "$name"
  done
  rm -rf "$STATE"
  log "cluster '$CLUSTER' stopped"
}

status() {
  if alive etcd && alive apiserver && api_ready; then
    log "cluster '$CLUSTER' is running"
    echo "$KUBECONFIG_PATH"
  else
    log "cluster '$CLUSTER' is not running"
    return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  stop-apiserver) stop_apiserver ;;
  start-apiserver) start_apiserver ;;
  *) echo "usage: $0 up|down|status|stop-apiserver|start-apiserver [NAME]" >&2; exit 2 ;;
esac
