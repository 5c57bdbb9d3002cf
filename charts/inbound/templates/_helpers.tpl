{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "inbound.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every resource: <release>-<chart>, or the release name when it already
contains the chart name.
*/}}
{{- define "inbound.fullname" -}}
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

{{- define "inbound.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inbound.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inbound.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inbound.labels" -}}
helm.sh/chart: {{ include "inbound.chart" . }}
{{ include "inbound.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: inbound
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* A Deployment's selector: the chart's, plus the role when serving and writing are split
(so that the Service selects only the serving Pods). Takes the deployment context. */}}
{{- define "inbound.podSelectorLabels" -}}
{{ include "inbound.selectorLabels" .root }}
{{- with .role }}
inbound.dev/role: {{ . }}
{{- end }}
{{- end }}

{{/* The serving Pods' ServiceAccount when split (it may read, never write). */}}
{{- define "inbound.serverServiceAccountName" -}}
{{- printf "%s-server" (include "inbound.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inbound.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inbound.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "inbound.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The issuer URL's host and path (the Ingress and the HTTPRoute route them). */}}
{{- define "inbound.issuerHost" -}}
{{- (urlParse .Values.issuer).hostname }}
{{- end }}
{{- define "inbound.issuerPath" -}}
{{- default "/" (urlParse .Values.issuer).path }}
{{- end }}

{{- define "inbound.signingKeysSecret" -}}
{{- default (printf "%s-signing-keys" (include "inbound.fullname" .)) .Values.keys.secretName }}
{{- end }}

{{- define "inbound.leaseName" -}}
{{- default (printf "%s-leader" (include "inbound.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "inbound.dataClaim" -}}
{{- default (printf "%s-data" (include "inbound.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/*
PodDisruptionBudget API: the discovered kinds when rendering against a cluster (helm install,
or --api-versions), otherwise the Kubernetes version (offline rendering knows only group
versions, and policy/v1beta1 is among them whatever --kube-version says).
*/}}
{{- define "inbound.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" }}
{{- "policy/v1" }}
{{- else if .Capabilities.APIVersions.Has "policy/v1beta1/PodDisruptionBudget" }}
{{- "policy/v1beta1" }}
{{- else if semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version }}
{{- "policy/v1" }}
{{- else }}
{{- "policy/v1beta1" }}
{{- end }}
{{- end }}

{{- define "inbound.pdbEnabled" -}}
{{- if or .Values.podDisruptionBudget.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* Refuses configurations the operator cannot run with; included by the Deployment. */}}
{{- define "inbound.validate" -}}
{{- if not .Values.issuer }}
{{- fail "issuer is required: set it to the public URL of the authorization server, e.g. --set issuer=https://auth.example.com" }}
{{- end }}
{{- if and (eq .Values.store.type "sqlite") (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount %d needs store.type=postgres: the embedded SQLite store serves a single replica (set replicaCount=1, or store.type=postgres with store.postgres.existingSecret)" (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.split.enabled (ne .Values.store.type "postgres") }}
{{- fail "split.enabled needs store.type=postgres: the serving Pods and the controller share the store" }}
{{- end }}
{{- if and (eq .Values.store.type "postgres") (not .Values.store.postgres.existingSecret) }}
{{- fail "store.type=postgres requires store.postgres.existingSecret: the name of a Secret in the release namespace whose key store.postgres.key (default url) holds the postgres:// URL" }}
{{- end }}
{{- with .Values.smtp }}
{{- if and .host (not .from) }}
{{- fail "smtp.host needs smtp.from: the From address of every email, e.g. noreply@example.com" }}
{{- end }}
{{- if and (not .host) (or .from .username .passwordSecret.name) }}
{{- fail "smtp.from, smtp.username and smtp.passwordSecret need smtp.host (the relay)" }}
{{- end }}
{{- if and .username (not .passwordSecret.name) }}
{{- fail "smtp.username needs smtp.passwordSecret.name: the Secret holding the SMTP password" }}
{{- end }}
{{- if and .passwordSecret.name (not .username) }}
{{- fail "smtp.passwordSecret needs smtp.username" }}
{{- end }}
{{- end }}
{{- if and .Values.persistence.enabled (gt (int .Values.replicaCount) 1) (not .Values.persistence.existingClaim) (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}
{{- fail "persistence.enabled with replicaCount > 1 needs persistence.accessModes to include ReadWriteMany (every replica mounts the same claim)" }}
{{- end }}
{{- end }}
