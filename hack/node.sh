#!/usr/bin/env bash
# One real Kubernetes node on this machine, without Docker: the API server and etcd of
# hack/cluster.sh plus containerd, runc, a CNI bridge, kubelet, kube-controller-manager,
# kube-scheduler, kube-proxy and CoreDNS, all local processes.
#
#   hack/node.sh up [NAME]      start it; wait until the node is Ready; the last line printed is
#                               the admin kubeconfig (as hack/cluster.sh up prints)
#   hack/node.sh down [NAME]    remove every process, mount, interface, iptables rule and
#                               network namespace that `up` made, then the control plane
#                               (its image store, $SIGNALBOX_CACHE/containerd/NAME, about 800 MB
#                               with the project's images, is kept for the next `up`)
#   hack/node.sh purge [NAME]   `down`, and remove the image store too
#   hack/node.sh status [NAME]  say whether it runs; print the kubeconfig path if it does
#   hack/node.sh import [NAME] TAR...   import image archives into the node's containerd
#
# NAME (or SIGNALBOX_CLUSTER; default "node") names the cluster. Networking is hermetic: every
# node process runs in the network namespace sbx-NAME, which has no route out of it. Inside it,
# the node's address is 198.18.255.1 (on its loopback interface), pods live on a bridge in
# 198.18.0.0/24 and Services in 198.18.1.0/24, so all iptables rules (CNI, kube-proxy) are the
# namespace's own. The API server stays on the host's loopback; two socat bridges over unix
# sockets join them: the node reaches the API server at 198.18.255.1:<api port>, and the API
# server reaches the kubelet (logs, exec, port-forward) at localhost:<kubelet port>, which is
# why the node is named "localhost". The node advertises a fake `nvidia.com/gpu` (4 of them).
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CLUSTER="${2:-${SIGNALBOX_CLUSTER:-node}}"
STATE="$SIGNALBOX_CACHE/clusters/$CLUSTER"
NODE="$SIGNALBOX_CACHE/nodes/$CLUSTER"
CONTAINERD_ROOT="$SIGNALBOX_CACHE/containerd/$CLUSTER"  # kept by `down`: imported images stay
NETNS="sbx-${CLUSTER:0:11}"
NODE_IP=198.18.255.1
POD_CIDR=198.18.0.0/24
SERVICE_CIDR=198.18.1.0/24
DNS_IP=198.18.1.10
NODE_NAME=localhost
FAKE_GPUS="${SIGNALBOX_FAKE_GPUS:-4}"
READY_TIMEOUT="${SIGNALBOX_NODE_READY_TIMEOUT:-120}"
SOCK="$NODE/run/containerd.sock"
KUBECTL="${KUBECTL:-kubectl}"

in_ns() { nsenter --net="/run/netns/$NETNS" "$@"; }

start_bg() {  # start_bg NAME CMD... : detached, logs to $NODE/logs/NAME.log, pid remembered
  local name="$1"; shift
  setsid "$@" >"$NODE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$NODE/pids/$name"
}

need_tools() {
  local missing=()
  for t in containerd runc ctr socat nsenter ip iptables openssl "$KUBECTL"; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [[ -x /usr/lib/cni/bridge || -x /opt/cni/bin/bridge ]] || missing+=(containernetworking-plugins)
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (apt-get install containerd runc containernetworking-plugins socat iproute2 iptables)"
  [[ "$(id -u)" == 0 ]] || die "a node needs root (network namespaces, mounts, containers)"
}

cni_bin_dir() { [[ -x /usr/lib/cni/bridge ]] && echo /usr/lib/cni || echo /opt/cni/bin; }

make_pki() {  # the API server's client certificate for the kubelet, and its CA
  local pki="$NODE/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=signalbox-node-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$pki/apiserver-kubelet.key" -out "$pki/apiserver-kubelet.csr" 2>/dev/null
  openssl x509 -req -in "$pki/apiserver-kubelet.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 30 -out "$pki/apiserver-kubelet.crt" 2>/dev/null
}

make_netns() {
  ip netns add "$NETNS"
  in_ns ip link set lo up
  in_ns ip addr add "$NODE_IP/32" dev lo  # the node's address (no dummy module needed)
  in_ns sysctl -qw net.ipv4.ip_forward=1
  if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
    in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 || true
  fi
}

write_configs() {
  local api_port="$1" kubelet_port="$2" ca
  mkdir -p "$NODE/cni/net.d" "$NODE/cni/ipam" "$NODE/kubelet" "$NODE/pod-logs" "$CONTAINERD_ROOT"
  ca="$(base64 -w0 "$STATE/certs/apiserver.crt")"
  cat >"$NODE/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: node
  cluster: {server: "https://$NODE_IP:$api_port", certificate-authority-data: $ca}
users:
- name: node
  user: {token: $(cat "$STATE/admin.token")}
contexts:
- name: node
  context: {cluster: node, user: node}
current-context: node
KC
  chmod 600 "$NODE/kubeconfig"
  cat >"$NODE/containerd.toml" <<TOML
version = 2
root = "$CONTAINERD_ROOT"
state = "$NODE/containerd-state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "signalbox.local/pause:1"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$(cni_bin_dir)"
    conf_dir = "$NODE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
TOML
  cat >"$NODE/cni/net.d/10-signalbox.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "signalbox",
  "plugins": [
    {"type": "bridge", "bridge": "sbx0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$NODE/cni/ipam",
              "ranges": [[{"subnet": "$POD_CIDR", "gateway": "198.18.0.1"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}}
  ]
}
JSON
  printf 'options ndots:5\n' >"$NODE/resolv.conf"
  cat >"$NODE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$SOCK
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$NODE/pki/ca.crt"}
authorization: {mode: Webhook}
clusterDNS: [$DNS_IP]
clusterDomain: cluster.local
resolvConf: "$NODE/resolv.conf"
podLogsDir: "$NODE/pod-logs"
localStorageCapacityIsolation: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
YAML
  cat >"$NODE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$NODE/kubeconfig"}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  cat >"$NODE/Corefile" <<COREFILE
.:53 {
    errors
    cache 5
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $NODE/kubeconfig
        pods insecure
    }
}
COREFILE
}

k() { "$KUBECTL" --kubeconfig "$STATE/kubeconfig" "$@"; }

node_ready() {
  [[ "$(k get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

pid_alive() { [[ -f "$NODE/pids/$1" ]] && kill -0 "$(cat "$NODE/pids/$1")" 2>/dev/null; }

fail_up() {
  log "$1; last lines of the node's logs:"
  for f in "$NODE"/logs/*.log; do
    [[ -f "$f" ]] && { echo "--- $(basename "$f")" >&2; tail -8 "$f" >&2; }
  done
  down >/dev/null 2>&1 || true
  die "$1"
}

up() {
  need_tools
  if [[ -f "$NODE/pids/kubelet" ]] && pid_alive kubelet && node_ready; then
    log "node '$CLUSTER' is already running"
    echo "$STATE/kubeconfig"
    return
  fi
  down >/dev/null 2>&1 || true
  local start=$SECONDS binaries
  binaries="$(bash "$HACK_DIR/build-binaries.sh" kubelet kube-controller-manager kube-scheduler kube-proxy coredns)" \
    || die "could not build the node's binaries"
  bin() { awk -v n="$1" '$1==n{print $2}' <<<"$binaries"; }
  mkdir -p "$NODE/logs" "$NODE/pids" "$NODE/run"
  chmod 700 "$NODE"
  make_pki
  local kubelet_port
  kubelet_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  SIGNALBOX_ADVERTISE_ADDRESS="$NODE_IP" SIGNALBOX_SERVICE_CIDR="$SERVICE_CIDR" \
    SIGNALBOX_APISERVER_EXTRA_ARGS="--kubelet-preferred-address-types=Hostname --kubelet-client-certificate=$NODE/pki/apiserver-kubelet.crt --kubelet-client-key=$NODE/pki/apiserver-kubelet.key" \
    bash "$HACK_DIR/cluster.sh" up "$CLUSTER" >/dev/null || fail_up "the control plane did not start"
  local api_port
  api_port="$(cat "$STATE/apiserver.port")"
  make_netns || fail_up "could not make the network namespace $NETNS"
  write_configs "$api_port" "$kubelet_port"
  bash "$HACK_DIR/node-images.sh" pause >/dev/null || fail_up "could not build the pause image"

  log "node network namespace $NETNS: node $NODE_IP, pods $POD_CIDR, services $SERVICE_CIDR"
  start_bg api-host socat "UNIX-LISTEN:$NODE/run/api.sock,fork,unlink-early" "TCP:127.0.0.1:$api_port"
  start_bg api-node nsenter --net="/run/netns/$NETNS" \
    socat "TCP-LISTEN:$api_port,bind=$NODE_IP,fork,reuseaddr" "UNIX-CONNECT:$NODE/run/api.sock"
  start_bg kubelet-node nsenter --net="/run/netns/$NETNS" \
    socat "UNIX-LISTEN:$NODE/run/kubelet.sock,fork,unlink-early" "TCP:$NODE_IP:$kubelet_port"
  start_bg kubelet-host socat "TCP-LISTEN:$kubelet_port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$NODE/run/kubelet.sock"

  start_bg containerd nsenter --net="/run/netns/$NETNS" containerd --config "$NODE/containerd.toml"

  for _ in $(seq 100); do [[ -S "$SOCK" ]] && break; sleep 0.2; done
  [[ -S "$SOCK" ]] || fail_up "containerd did not start"
  import_images "$SIGNALBOX_CACHE/images/pause.tar"

  start_bg kube-controller-manager nsenter --net="/run/netns/$NETNS" "$(bin kube-controller-manager)" \
    --kubeconfig "$NODE/kubeconfig" --leader-elect=false --secure-port 0 \
    --service-account-private-key-file "$STATE/certs/sa.key" --root-ca-file "$STATE/certs/apiserver.crt" \
    --service-cluster-ip-range "$SERVICE_CIDR" --controllers '*,-nodeipam' --v 1
  start_bg kube-scheduler nsenter --net="/run/netns/$NETNS" "$(bin kube-scheduler)" \
    --kubeconfig "$NODE/kubeconfig" --leader-elect=false --secure-port 0 --v 1
  start_bg kubelet nsenter --net="/run/netns/$NETNS" "$(bin kubelet)" \
    --config "$NODE/kubelet.yaml" --kubeconfig "$NODE/kubeconfig" --root-dir "$NODE/kubelet" \
    --cert-dir "$NODE/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v 1
  start_bg kube-proxy nsenter --net="/run/netns/$NETNS" "$(bin kube-proxy)" --config "$NODE/kube-proxy.yaml" --v 1
  start_bg coredns nsenter --net="/run/netns/$NETNS" "$(bin coredns)" -conf "$NODE/Corefile" -dns.port 53

  local deadline=$((SECONDS + READY_TIMEOUT))
  until node_ready; do
    for p in containerd kubelet kube-proxy kube-scheduler kube-controller-manager coredns; do
      pid_alive "$p" || fail_up "$p exited"
    done
    ((SECONDS < deadline)) || fail_up "the node was not Ready within ${READY_TIMEOUT}s"
    sleep 1
  done
  k patch node "$NODE_NAME" --subresource=status --type=json \
    -p "[{\"op\":\"add\",\"path\":\"/status/capacity/nvidia.com~1gpu\",\"value\":\"$FAKE_GPUS\"}]" >/dev/null
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: $DNS_IP
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: signalbox-node}
addressType: IPv4
endpoints:
- addresses: ["$NODE_IP"]
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
YAML
  for _ in $(seq 60); do
    [[ "$(k get node "$NODE_NAME" -o 'jsonpath={.status.allocatable.nvidia\.com/gpu}')" == "$FAKE_GPUS" ]] && break
    sleep 0.5
  done
  log "node '$CLUSTER' Ready in $((SECONDS - start))s (logs: $NODE/logs)"
  echo "$STATE/kubeconfig"
}

import_images() {  # import_images TAR...: into the node's containerd, namespace k8s.io
  local tar
  for tar in "$@"; do
    ctr --address "$SOCK" -n k8s.io images import --no-unpack=false "$tar" >/dev/null \
      || die "could not import $tar"
  done
}

pod_netns_files() {  # the network namespaces containerd made for this node's pods
  local inodes="" pid f
  for pid in $(ctr --address "$SOCK" -n k8s.io tasks ls 2>/dev/null | awk 'NR > 1 {print $2}'); do
    inodes+=" $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null || true)"
  done
  for f in /run/netns/cni-*; do
    [[ -e "$f" ]] || continue
    [[ "$inodes " == *" $(stat -L -c %i "$f" 2>/dev/null || echo none) "* ]] && echo "$f"
  done
  return 0
}

stop_pidfile() {
  local f="$1" pid
  pid="$(cat "$f")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

our_mounts() {  # mount points under this node's directories, deepest first
  awk '{print $5}' /proc/self/mountinfo | grep -E "^($NODE|$CONTAINERD_ROOT)(/|$)" | sort -r || true
}

down() {
  local netns_files=() f id pid
  for f in kubelet kube-proxy kube-scheduler kube-controller-manager coredns; do
    [[ -f "$NODE/pids/$f" ]] && stop_pidfile "$NODE/pids/$f"
  done
  if [[ -S "$SOCK" ]]; then
    mapfile -t netns_files < <(pod_netns_files)
    for id in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for id in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr --address "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  for f in "$NODE"/pids/*; do [[ -f "$f" ]] && stop_pidfile "$f"; done
  # shims of this node's containerd (found by its socket path, ended by their own pid)
  for pid in $(pgrep -f -- "-address $SOCK" 2>/dev/null || true); do kill -9 "$pid" 2>/dev/null || true; done
  for f in "${netns_files[@]}"; do
    umount "$f" 2>/dev/null || true
    rm -f "$f"
  done
  for f in $(our_mounts); do umount -l "$f" 2>/dev/null || true; done
  ip netns del "$NETNS" 2>/dev/null || true
  for f in /var/log/containers/*.log; do
    [[ -L "$f" && "$(readlink "$f")" == "$NODE/"* ]] && rm -f "$f"
  done
  rm -rf "$NODE"
  bash "$HACK_DIR/cluster.sh" down "$CLUSTER" >/dev/null 2>&1 || true
  local kept=""
  [[ ! -d "$CONTAINERD_ROOT" ]] || kept="$(du -sh "$CONTAINERD_ROOT" 2>/dev/null | cut -f1)"
  log "node '$CLUSTER' stopped${kept:+; its image store ($kept, $CONTAINERD_ROOT) is kept for the next up: hack/node.sh purge $CLUSTER removes it}"
}

purge() {
  down
  rm -rf "$CONTAINERD_ROOT"
  log "node '$CLUSTER': image store removed"
}

status() {
  if pid_alive kubelet && node_ready; then
    log "node '$CLUSTER' is running"
    echo "$STATE/kubeconfig"
  else
    log "node '$CLUSTER' is not running"
    return 1
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  purge) purge ;;
  status) status ;;
  import) shift 2; import_images "$@" ;;
  *) echo "usage: $0 up|down|purge|status [NAME] | import NAME TAR..." >&2; exit 2 ;;
esac
