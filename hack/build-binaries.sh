#!/usr/bin/env bash
# Builds the pinned kube-apiserver and etcd (and, on request, kubectl, helm, kubeconform, promtool,
# the node's kubelet, kube-controller-manager, kube-scheduler, kube-proxy, a CoreDNS with the plugins
# a cluster DNS needs, and Jaeger's all-in-one) from the Go module proxy into $SIGNALBOX_CACHE/bin/<tool>-<version>/, and
# the test harnesses in hack/tools/<name>/ into $SIGNALBOX_CACHE/bin/<name>-<hash of their sources>/.
# A binary that is already there is reused; a new pin (or a changed harness) builds a new one.
# The one-shot tools (kubectl, helm, kubeconform, promtool, jaeger, the harnesses) and the node's CoreDNS are
# built without optimisation (-gcflags=all=-N -l, a "-O0" folder suffix): that compiles them about
# a quarter faster, and they only ever run briefly or idle. The long-running control plane
# (kube-apiserver, etcd, the kubelet and controllers) is optimised as usual.
# monitoring-crds is no binary: it copies prometheus-operator's ServiceMonitor and PrometheusRule
# CRDs out of its Go module into $SIGNALBOX_CACHE/crds/prometheus-operator-<version>/.
#
# usage: hack/build-binaries.sh [kube-apiserver] [etcd] [kubectl] [helm] [kubeconform] [promtool] [jaeger]
#          [argocd-health] [dashboard-check] [monitoring-crds] [kubelet]
#          [kube-controller-manager] [kube-scheduler] [kube-proxy] [coredns]
#        (no arguments: kube-apiserver and etcd), prints one "name path" line per tool.
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# unoptimised NAME: whether NAME is built without optimisation (see above).
unoptimised() {
  case "$1" in kubectl | helm | kubeconform | promtool | argocd-health | dashboard-check | coredns | jaeger) return 0 ;; esac
  return 1
}

bin_dir() {
  local suffix=""
  ! unoptimised "$1" || suffix=-O0
  echo "$SIGNALBOX_CACHE/bin/$1-$2$suffix"
}

# gcflags NAME: the -gcflags argument NAME is built with, if any.
gcflags() { ! unoptimised "$1" || echo "-gcflags=all=-N -l"; }

# wait_building PID NAME START: waits for a build, with a heartbeat so a long one shows progress.
wait_building() {
  local pid="$1" name="$2" start="$3"
  while kill -0 "$pid" 2>/dev/null; do
    sleep 15
    kill -0 "$pid" 2>/dev/null && log "still building $name ($((SECONDS - start))s so far)"
  done
  wait "$pid"
}

# go_build NAME VERSION MODULE PACKAGE [GO.MOD EXTRA LINES] [LDFLAGS] [MAIN.GO SOURCE] [KEY]
# With MAIN.GO SOURCE, PACKAGE is "." and the build's own main.go is that source. KEY, when
# given, joins VERSION in the cache folder's name: a build whose flags changed is a new binary.
go_build() {
  local name="$1" version="$2" module="$3" pkg="$4" extra="${5:-}" ldflags="${6:-}" main_src="${7:-}"
  local key="${8:-}" dir out work tmp
  dir="$(bin_dir "$name" "$version${key:+-$key}")"
  out="$dir/$name"
  tmp="$out.tmp.$$"  # two builds at once each write their own file; the last move wins
  if [[ -x "$out" ]]; then echo "$name $out"; return; fi
  need_go
  work="$(mktemp -d)"
  log "building $name $version from the Go module proxy (first time only; this takes several minutes)"
  local start=$SECONDS
  (
    cd "$work"
    go mod init signalbox.local/build-"$name" >/dev/null 2>&1
    printf '%s\n' "$extra" >>go.mod
    [[ -z "$main_src" ]] || printf '%s\n' "$main_src" >main.go
    GOFLAGS=-mod=mod go get "${module}@${version}" >build.log 2>&1 || { cat build.log >&2; exit 1; }
    mkdir -p "$dir"
    local gc
    gc="$(gcflags "$name")"
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath ${gc:+"$gc"} -ldflags "-s -w $ldflags" -o "$tmp" "$pkg" \
      >>build.log 2>&1 &
    wait_building $! "$name" "$start" || { tail -40 build.log >&2; exit 1; }
    mv -f "$tmp" "$out"
  ) || { rm -rf "$work"; die "building $name $version failed (output above)"; }
  rm -rf "$work"
  log "built $name in $((SECONDS - start))s -> $out"
  echo "$name $out"
}

# harness_build NAME: builds the Go module in hack/tools/NAME (its own go.mod and go.sum).
harness_build() {
  local name="$1" src="$HACK_DIR/tools/$1"
  local hash dir out tmp start=$SECONDS
  [[ -f "$src/go.mod" ]] || die "no Go module in $src"
  hash="$(cd "$src" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort \
    | xargs cat | sha256sum | cut -c1-12)"
  dir="$(bin_dir "$name" "$hash")"
  out="$dir/$name"
  tmp="$out.tmp.$$"
  if [[ -x "$out" ]]; then echo "$name $out"; return; fi
  need_go
  log "building $name from hack/tools/$name (once per change of its sources)"
  mkdir -p "$dir"
  local gc
  gc="$(gcflags "$name")"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath ${gc:+"$gc"} -ldflags "-s -w" \
    -o "$tmp" . >"$tmp.log" 2>&1) &
  wait_building $! "$name" "$start" || { tail -40 "$tmp.log" >&2; rm -f "$tmp" "$tmp.log"; die "building $name failed"; }
  mv -f "$tmp" "$out"
  rm -f "$tmp.log"
  log "built $name in $((SECONDS - start))s -> $out"
  echo "$name $out"
}

# monitoring_crds: the ServiceMonitor and PrometheusRule CRDs from prometheus-operator's module.
monitoring_crds() {
  local dir="$SIGNALBOX_CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" src kind
  if [[ -f "$dir/servicemonitors.yaml" && -f "$dir/prometheusrules.yaml" ]]; then
    echo "monitoring-crds $dir"; return
  fi
  need_go
  src="$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [[ -d "$src/example/prometheus-operator-crd" ]] \
    || die "could not download prometheus-operator $PROMETHEUS_OPERATOR_VERSION from the Go module proxy"
  mkdir -p "$dir"
  for kind in servicemonitors prometheusrules; do
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$dir/$kind.yaml.tmp.$$"
    chmod 0644 "$dir/$kind.yaml.tmp.$$"
    mv -f "$dir/$kind.yaml.tmp.$$" "$dir/$kind.yaml"
  done
  echo "monitoring-crds $dir"
}

kube_replaces() {
  # Each staging module that k8s.io/kubernetes replaces with a local path must be
  # pinned to its published v0.X.Y twin instead.
  local minor="${KUBE_VERSION#v1.}"
  local staging="v0.${minor}"
  local mod
  mod="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [[ -f "$mod" ]] || die "could not download k8s.io/kubernetes@$KUBE_VERSION go.mod"
  awk '/=> \.\/staging\/src\//{print "replace " $1 " => " $1 " '"$staging"'"}' "$mod"
}

build_kube() {  # build_kube NAME: one command of k8s.io/kubernetes at the pinned version
  local name="$1" out
  out="$(bin_dir "$name" "$KUBE_VERSION")/$name"
  if [[ -x "$out" ]]; then echo "$name $out"; return; fi
  need_go
  local replaces minor="${KUBE_VERSION#v1.}"
  replaces="$(cd "$(mktemp -d)" && go mod init tmp >/dev/null 2>&1 && kube_replaces)"
  local v=k8s.io/component-base/version
  go_build "$name" "$KUBE_VERSION" k8s.io/kubernetes "k8s.io/kubernetes/cmd/$name" "$replaces" \
    "-X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*} -X $v.gitTreeState=clean"
}

# A CoreDNS with only the plugins a cluster DNS on one node needs (its full plugin set pulls in
# every cloud SDK): the kubernetes plugin answers cluster names, nothing is forwarded.
COREDNS_MAIN='package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{"errors", "log", "health", "ready", "cache", "kubernetes"}
}

func main() { coremain.Run() }'

build_coredns() {
  go_build coredns "$COREDNS_VERSION" github.com/coredns/coredns . "" "" "$COREDNS_MAIN"
}

# helm, told the Kubernetes version the project runs (KUBE_VERSION): without a cluster,
# `helm template` and `helm lint` check the chart's kubeVersion against it, not helm's own
# default (1.20), so they work without --kube-version.
build_helm() {
  local minor="${KUBE_VERSION#v1.}" flags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  minor="${minor%%.*}"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  go_build helm "$HELM_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "" "$flags" "" "k1.$minor"
}

main() {
  local tools=("$@")
  [[ ${#tools[@]} -gt 0 ]] || tools=(kube-apiserver etcd)
  for tool in "${tools[@]}"; do
    case "$tool" in
      kube-apiserver | kubelet | kube-controller-manager | kube-scheduler | kube-proxy | kubectl) build_kube "$tool" ;;
      coredns) build_coredns ;;
      etcd) go_build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 ;;
      helm) build_helm ;;
      kubeconform) go_build kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform github.com/yannh/kubeconform/cmd/kubeconform ;;
      argocd-health | dashboard-check) harness_build "$tool" ;;
      monitoring-crds) monitoring_crds ;;
      jaeger) go_build jaeger "$JAEGER_VERSION" github.com/jaegertracing/jaeger github.com/jaegertracing/jaeger/cmd/jaeger ;;
      promtool) go_build promtool "$PROMETHEUS_VERSION" github.com/prometheus/prometheus github.com/prometheus/prometheus/cmd/promtool ;;
      *) die "unknown tool: $tool" ;;
    esac
  done
}

main "$@"
