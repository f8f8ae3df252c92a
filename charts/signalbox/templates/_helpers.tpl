{{- define "signalbox.name" -}}signalbox{{- end -}}

{{- define "signalbox.fullname" -}}
{{- if contains "signalbox" .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-signalbox" .Release.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "signalbox.labels" -}}
app.kubernetes.io/name: signalbox
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "signalbox.selector" -}}
app.kubernetes.io/name: signalbox
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "signalbox.image" -}}
{{ printf "%s/%s/%s:%s" .root.Values.image.registry .root.Values.image.repository .component (default .root.Chart.AppVersion .root.Values.image.tag) }}
{{- end -}}

{{- define "signalbox.watched" -}}
{{- if .Values.watchNamespaces -}}{{ join "," .Values.watchNamespaces }}{{- else -}}{{ .Release.Namespace }}{{- end -}}
{{- end -}}

{{- define "signalbox.routerNamespace" -}}
{{- default .Release.Namespace .Values.router.namespace -}}
{{- end -}}

{{- define "signalbox.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* What a router reads, shared router or sidecar: read-only, in the namespace it serves. */}}
{{- define "signalbox.routerRules" -}}
- apiGroups: [signalbox.dev]
  resources: [llmproviders, routingpolicies]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [secrets, services]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
{{- end -}}

{{- /* A Secret the chart makes, holding one random value under .key (prefixed by .prefix),
kept across upgrades (read back with lookup); .keep also keeps it past an uninstall. */ -}}
{{- define "signalbox.generatedSecret" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels: {{- include "signalbox.labels" .root | nindent 4 }}
  {{- if .keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
type: Opaque
data:
  {{- if and $existing (index $existing.data .key) }}
  {{ .key }}: {{ index $existing.data .key }}
  {{- else }}
  {{ .key }}: {{ printf "%s%s" .prefix (randAlphaNum 40) | b64enc }}
  {{- end }}
{{- end -}}

{{- /* The Secret whose .Values.router.metricsAuth.key the metrics port asks for; empty when
the metrics port is open (client keys off, or metricsAuth off). */ -}}
{{- define "signalbox.metricsTokenSecret" -}}
{{- $r := .Values.router -}}
{{- if and $r.enabled $r.clientAuth.enabled $r.metricsAuth.enabled -}}
{{- default (printf "%s-router-metrics-token" (include "signalbox.fullname" .)) $r.metricsAuth.existingSecret -}}
{{- end -}}
{{- end -}}

{{- /* The OTEL_* variables of a container that traces (.service: its service name), when
tracing.enabled; nothing otherwise. */ -}}
{{- define "signalbox.tracingEnv" -}}
{{- $t := .root.Values.tracing }}
{{- if $t.enabled }}
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ $t.endpoint | quote }}}
- {name: OTEL_EXPORTER_OTLP_PROTOCOL, value: {{ $t.protocol | quote }}}
- {name: OTEL_SERVICE_NAME, value: {{ .service | quote }}}
- {name: OTEL_TRACES_SAMPLER, value: {{ $t.sampler | quote }}}
- {name: OTEL_TRACES_SAMPLER_ARG, value: {{ $t.samplerRatio | quote }}}
- {name: OTEL_RESOURCE_ATTRIBUTES, value: {{ trimSuffix "," (printf "k8s.namespace.name=%s,%s" .root.Release.Namespace $t.resourceAttributes) | quote }}}
{{- if $t.captureContent }}
- {name: OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, value: "true"}
{{- end }}
{{- end }}
{{- end -}}
