{{/*
Chart name, overridable with nameOverride. Truncated to 63 characters (the DNS label limit).
*/}}
{{- define "durable.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name, plus the chart name unless the release name already
contains it. `helm install durable charts/durable` gives "durable"; resources append a component
suffix ("durable-controlplane").
*/}}
{{- define "durable.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "durable.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource. Call with (dict "ctx" $ "component" "controlplane").
*/}}
{{- define "durable.labels" -}}
helm.sh/chart: {{ include "durable.chart" .ctx }}
{{ include "durable.selectorLabels" . }}
app.kubernetes.io/version: {{ (.ctx.Values.image.tag | default .ctx.Chart.AppVersion) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: durable
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (Deployment selectors are immutable), so
nothing version-dependent goes in here. Call with (dict "ctx" $ "component" "controlplane").
*/}}
{{- define "durable.selectorLabels" -}}
app.kubernetes.io/name: {{ include "durable.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/*
Component names.
*/}}
{{- define "durable.controlPlane.fullname" -}}
{{- printf "%s-controlplane" (include "durable.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "durable.operator.fullname" -}}
{{- printf "%s-operator" (include "durable.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "durable.migrations.fullname" -}}
{{- printf "%s-migrate" (include "durable.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Service account names.
*/}}
{{- define "durable.controlPlane.serviceAccountName" -}}
{{- if .Values.controlPlane.serviceAccount.create }}
{{- default (include "durable.controlPlane.fullname" .) .Values.controlPlane.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.controlPlane.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "durable.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "durable.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image of the control plane, the operator and the migrations.
*/}}
{{- define "durable.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
The in-cluster gRPC address of the control plane, as workers and the operator dial it.
*/}}
{{- define "durable.controlPlane.address" -}}
{{- printf "%s.%s.svc:%d" (include "durable.controlPlane.fullname" .) .Release.Namespace (int .Values.controlPlane.service.port) }}
{{- end }}

{{/*
The Secret that holds DATABASE_URL; installing without it fails with a message that says what
to set.
*/}}
{{- define "durable.database.secretName" -}}
{{- required "database.existingSecret is required: the name of an existing Secret that holds the PostgreSQL URL (DATABASE_URL), e.g. --set database.existingSecret=durable-database" .Values.database.existingSecret }}
{{- end }}

{{/*
The DATABASE_URL environment variable, read from the existing Secret.
*/}}
{{- define "durable.database.env" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "durable.database.secretName" . }}
      key: {{ .Values.database.secretKey }}
{{- end }}

{{/*
Pod-level security context: the chart-wide default merged with a component's override.
Call with (dict "ctx" $ "override" .Values.controlPlane.podSecurityContext).
*/}}
{{- define "durable.podSecurityContext" -}}
{{- toYaml (mergeOverwrite (deepCopy .ctx.Values.podSecurityContext) (.override | default dict)) }}
{{- end }}

{{/*
Container-level security context: the chart-wide default merged with a component's override.
*/}}
{{- define "durable.containerSecurityContext" -}}
{{- toYaml (mergeOverwrite (deepCopy .ctx.Values.containerSecurityContext) (.override | default dict)) }}
{{- end }}

{{/*
Security settings for a container. Call with (dict "ctx" $ "role" "server") for the control
plane or (dict "ctx" $ "role" "client") for the operator. Files come from the Secrets mounted
by durable.security.volumes at /etc/durable.
*/}}
{{- define "durable.security.env" -}}
{{- $v := .ctx.Values -}}
{{- if $v.auth.existingSecret }}
- name: DURABLE_AUTH_TOKEN_FILE
  value: /etc/durable/auth/{{ $v.auth.secretKey }}
{{- end }}
{{- if $v.tls.existingSecret }}
{{- if eq .role "server" }}
- name: DURABLE_TLS_CERT_FILE
  value: /etc/durable/tls/tls.crt
- name: DURABLE_TLS_KEY_FILE
  value: /etc/durable/tls/tls.key
{{- if $v.tls.mutual }}
- name: DURABLE_TLS_CLIENT_CA_FILE
  value: /etc/durable/tls/ca.crt
{{- end }}
{{- else }}
- name: DURABLE_TLS_CA_FILE
  value: /etc/durable/tls/ca.crt
{{- if $v.tls.mutual }}
- name: DURABLE_TLS_CERT_FILE
  value: /etc/durable/tls/tls.crt
- name: DURABLE_TLS_KEY_FILE
  value: /etc/durable/tls/tls.key
{{- end }}
{{- with $v.tls.serverName }}
- name: DURABLE_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "durable.security.volumeMounts" -}}
{{- if .Values.auth.existingSecret }}
- name: auth
  mountPath: /etc/durable/auth
  readOnly: true
{{- end }}
{{- if .Values.tls.existingSecret }}
- name: tls
  mountPath: /etc/durable/tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "durable.security.volumes" -}}
{{- if .Values.auth.existingSecret }}
- name: auth
  secret:
    secretName: {{ .Values.auth.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if .Values.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}
