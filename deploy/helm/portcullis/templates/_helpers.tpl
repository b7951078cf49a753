{{/* Chart name. */}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, at most 63 characters (a DNS label). */}}
{{- define "portcullis.fullname" -}}
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

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "portcullis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The Secret holding client-secret, session-secret (and maybe redis-url). */}}
{{- define "portcullis.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "portcullis.fullname" . }}
{{- end }}
{{- end }}

{{/* True when the Redis URL comes from the Secret rather than the config. */}}
{{- define "portcullis.redisUrlFromSecret" -}}
{{- if and (eq .Values.config.session.store "redis") (not .Values.config.session.redisUrl) }}true{{ end }}
{{- end }}

{{/*
Refuse values that would deploy something broken; each message says what to set.
*/}}
{{- define "portcullis.validate" -}}
{{- $store := .Values.config.session.store }}
{{- if not (has $store (list "memory" "redis")) }}
{{- fail (printf "config.session.store is %q: use \"memory\" or \"redis\"" $store) }}
{{- end }}
{{- if and (eq $store "memory") (gt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount > 1 with config.session.store=memory: replicas would not share sessions; set config.session.store=redis" }}
{{- end }}
{{- if and (not .Values.secrets.existingSecret) (not .Values.secrets.create) }}
{{- fail "set secrets.existingSecret (a Secret with client-secret and session-secret) or secrets.create=true" }}
{{- end }}
{{- if and .Values.secrets.existingSecret .Values.secrets.create }}
{{- fail "set either secrets.existingSecret or secrets.create, not both" }}
{{- end }}
{{- if .Values.secrets.create }}
{{- if not .Values.secrets.clientSecret }}
{{- fail "secrets.create=true needs secrets.clientSecret" }}
{{- end }}
{{- if not .Values.secrets.sessionSecret }}
{{- fail "secrets.create=true needs secrets.sessionSecret (openssl rand -base64 32)" }}
{{- end }}
{{- if and (include "portcullis.redisUrlFromSecret" .) (not .Values.secrets.redisUrl) }}
{{- fail "config.session.store=redis needs config.session.redisUrl or secrets.redisUrl" }}
{{- end }}
{{- end }}
{{- end }}
