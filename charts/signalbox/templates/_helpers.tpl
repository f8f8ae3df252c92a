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
