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
The Secret that holds DATABASE_URL: the chart's own with postgresql.enabled, else the existing one
(installing without either fails with a message that says what to set).
*/}}
{{- define "durable.database.secretName" -}}
{{- if .Values.postgresql.enabled }}
{{- printf "%s-postgresql" (include "durable.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "database.existingSecret is required: the name of an existing Secret that holds the PostgreSQL URL (DATABASE_URL), e.g. --set database.existingSecret=durable-database, or --set postgresql.enabled=true for a PostgreSQL installed with the chart" .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "durable.database.secretKey" -}}
{{- if .Values.postgresql.enabled }}DATABASE_URL{{ else }}{{ .Values.database.secretKey }}{{ end }}
{{- end }}

{{/*
The DATABASE_URL environment variable, read from the Secret.
*/}}
{{- define "durable.database.env" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "durable.database.secretName" . }}
      key: {{ include "durable.database.secretKey" . }}
{{- end }}

{{/*
Authentication. The Secret holding the credentials: the existing one, or the one the chart
generates (templates/auth-secret.yaml). Keys, by role:
  server (the control plane): a credentials file (DURABLE_AUTH_TOKENS_FILE) under "tokens"
    (generated) or auth.tokensKey; or, with an existing Secret and no tokensKey, the one admin
    token under auth.secretKey (DURABLE_AUTH_TOKEN_FILE).
  client (the operator): its token, under "operator" (generated) or auth.secretKey.
*/}}
{{- define "durable.auth.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "durable.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{- define "durable.auth.key" -}}
{{- $v := .ctx.Values.auth -}}
{{- if eq .role "server" }}
{{- if not $v.existingSecret }}tokens{{ else }}{{ $v.tokensKey | default $v.secretKey }}{{ end }}
{{- else if eq .role "console" }}
{{- if not $v.existingSecret }}console{{ else }}{{ $v.secretKey }}{{ end }}
{{- else }}
{{- if not $v.existingSecret }}operator{{ else }}{{ $v.secretKey }}{{ end }}
{{- end }}
{{- end }}

{{/*
The in-cluster namespaces the operator watches (a list; empty = all namespaces).
*/}}
{{- define "durable.operator.namespaces" -}}
{{- $o := .Values.operator -}}
{{- $list := concat (list) $o.watchNamespaces -}}
{{- if $o.watchNamespace }}{{ $list = append $list $o.watchNamespace }}{{ end -}}
{{- if and $o.namespaced (not $list) }}{{ $list = list .Release.Namespace }}{{ end -}}
{{- toJson (uniq $list) }}
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
by durable.security.volumes at /etc/durable; the token is a file, never an environment variable
(a process's children inherit its environment).
*/}}
{{- define "durable.security.env" -}}
{{- $v := .ctx.Values -}}
{{- if $v.auth.enabled }}
{{- if and (eq .role "server") (or (not $v.auth.existingSecret) $v.auth.tokensKey) }}
- name: DURABLE_AUTH_TOKENS_FILE
  value: /etc/durable/auth/tokens
{{- else }}
- name: DURABLE_AUTH_TOKEN_FILE
  value: /etc/durable/auth/token
{{- end }}
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
{{- if .Values.auth.enabled }}
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

{{/*
Only the key a component needs is projected into its pod: the control plane sees the
credentials file, the operator its own token. Call with (dict "ctx" $ "role" "server"|"client").
*/}}
{{- define "durable.security.volumes" -}}
{{- $v := .ctx.Values -}}
{{- if $v.auth.enabled }}
{{- $server := and (eq .role "server") (or (not $v.auth.existingSecret) $v.auth.tokensKey) }}
- name: auth
  secret:
    secretName: {{ include "durable.auth.secretName" .ctx }}
    defaultMode: 0440
    items:
      - key: {{ include "durable.auth.key" . }}
        path: {{ if $server }}tokens{{ else }}token{{ end }}
{{- end }}
{{- if $v.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ $v.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/*
The example pool: its namespace (the first watched namespace, else the release's) and the
Secret its workers' token comes from.
*/}}
{{- define "durable.examplePool.namespace" -}}
{{- $watched := include "durable.operator.namespaces" . | fromJsonArray }}
{{- if $watched }}{{ first $watched }}{{ else }}{{ .Release.Namespace }}{{ end }}
{{- end }}

{{- define "durable.examplePool.secretName" -}}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else }}
{{- printf "%s-%s-auth" (include "durable.fullname" .) .Values.examplePool.name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "durable.examplePool.secretKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.examplePool.tokenKey | default .Values.auth.secretKey }}{{ else }}token{{ end }}
{{- end }}

{{/*
The operator's rules on its resource and the objects it manages (a ClusterRole, or a Role in
each watched namespace; see operator-rbac.yaml).
*/}}
{{- define "durable.operator.rules" -}}
# The pools: watch them, and patch them (kopf's finalizer and last-handled annotations).
- apiGroups: ["durable.dev"]
  resources: ["durableworkerpools"]
  verbs: ["list", "watch", "patch"]
# The pools' status: conditions, backlog, replicas, the scale selector (merge patches only).
- apiGroups: ["durable.dev"]
  resources: ["durableworkerpools/status"]
  verbs: ["patch"]
# The worker Deployment of each pool: watched through an index, created, patched (replicas,
# drift repair); read once when a create conflicts with an existing one. Deleting a pool
# deletes its Deployment through the owner reference (the garbage collector), not by us.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Worker pods: listed and annotated with controller.kubernetes.io/pod-deletion-cost before
# scaling down, so that idle workers go first.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "patch"]
# Events about the pools (kopf posts them to the core API).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
