# shellcheck shell=bash disable=SC2034
# Pinned versions of the tools Signalbox builds from the Go module proxy.
# Changing a pin here makes the next `hack/cluster.sh up` rebuild that binary.
KUBE_VERSION="v1.35.4"
ETCD_VERSION="v3.6.16"
HELM_VERSION="v3.19.5"
KUBECONFORM_VERSION="v0.7.0"
PROMETHEUS_VERSION="v0.316.0"   # promtool: checks and unit-tests the chart's alert rules
# The ServiceMonitor and PrometheusRule CRDs the chart is validated against. The newest
# github.com/prometheus-operator/prometheus-operator the Go module proxy serves (its
# pkg/apis/monitoring submodule has newer tags, but holds no CRDs).
PROMETHEUS_OPERATOR_VERSION="v0.85.0"
COREDNS_VERSION="v1.14.7"
JAEGER_VERSION="v1.75.0"      # all-in-one: the integration tests read the router's and operator's traces back from it

# Where built binaries live: outside the repository, shared by every checkout.
SIGNALBOX_CACHE="${SIGNALBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/signalbox}"
