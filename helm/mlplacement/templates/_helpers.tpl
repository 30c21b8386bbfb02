{{/* Name of the chart, overridable. */}}
{{- define "mlplacement.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects, at most 63 characters. */}}
{{- define "mlplacement.fullname" -}}
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

{{/* Labels every object carries. */}}
{{- define "mlplacement.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "mlplacement.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlplacement
{{- end }}

{{/* Labels that select the operator pod; never change them after a release exists. */}}
{{- define "mlplacement.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlplacement.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mlplacement.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mlplacement.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mlplacement.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "mlplacement.webhookService" -}}
{{- printf "%s-webhook" (include "mlplacement.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlplacement.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "mlplacement.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
