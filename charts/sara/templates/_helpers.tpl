{{/* Chart name. */}}
{{- define "sara.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the override. */}}
{{- define "sara.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart label value. */}}
{{- define "sara.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: never the chart version. */}}
{{- define "sara.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sara.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Common labels. */}}
{{- define "sara.labels" -}}
helm.sh/chart: {{ include "sara.chart" . }}
{{ include "sara.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sara
{{- end }}

{{/* ServiceAccount name. */}}
{{- define "sara.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sara.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Sara image reference. */}}
{{- define "sara.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when a monitoring object is wanted: its value is true, or "auto" and the cluster
serves the Prometheus Operator kind (dict: value, kind, root). Empty otherwise. */}}
{{- define "sara.monitoringOn" -}}
{{- if eq (toString .value) "auto" -}}
{{- if .root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) }}true{{ end -}}
{{- else if eq (toString .value) "true" -}}
true
{{- end -}}
{{- end }}

{{/* The `for`, labels and runbook_url of one alert (dict: name, root). */}}
{{- define "sara.alertLabels" -}}
{{- $a := index .root.Values.prometheusRule.alerts .name -}}
for: {{ $a.for }}
labels:
  severity: {{ $a.severity }}
  {{- with .root.Values.prometheusRule.alertLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{- define "sara.runbook" -}}
{{ .root.Values.prometheusRule.runbookUrl }}#{{ lower .name }}
{{- end }}
