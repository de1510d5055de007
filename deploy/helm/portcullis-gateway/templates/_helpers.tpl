{{/*
The chart's name, shortened to Kubernetes' 63 characters.
*/}}
{{- define "portcullis-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the objects: the release name, with the chart name unless
the release name already contains it.
*/}}
{{- define "portcullis-gateway.fullname" -}}
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

{{- define "portcullis-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "portcullis-gateway.labels" -}}
helm.sh/chart: {{ include "portcullis-gateway.chart" . }}
{{ include "portcullis-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: portcullis
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the gateway's pods (they never change across upgrades).
*/}}
{{- define "portcullis-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "portcullis-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portcullis-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "portcullis-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
The Secret holding the gateway token, and its key.
*/}}
{{- define "portcullis-gateway.tokenSecretName" -}}
{{- .Values.gateway.auth.existingSecretName | default (include "portcullis-gateway.fullname" .) }}
{{- end }}

{{- define "portcullis-gateway.tokenSecretKey" -}}
{{- if .Values.gateway.auth.existingSecretName }}
{{- .Values.gateway.auth.existingSecretKey | default "token" }}
{{- else }}
{{- "token" }}
{{- end }}
{{- end }}

{{/*
The Secret holding the backup key, and its key.
*/}}
{{- define "portcullis-gateway.backupSecretName" -}}
{{- .Values.gateway.backup.existingSecretName | default (include "portcullis-gateway.fullname" .) }}
{{- end }}

{{- define "portcullis-gateway.backupSecretKey" -}}
{{- if .Values.gateway.backup.existingSecretName }}
{{- .Values.gateway.backup.existingSecretKey | default "backup-key" }}
{{- else }}
{{- "backup-key" }}
{{- end }}
{{- end }}

{{/*
Whether a store is set (PORTCULLIS_STORE and its settings are passed): a URL
as a value or from an existing Secret. Empty: the management plane's setting
for the gateway applies, else each pod counts alone.
*/}}
{{- define "portcullis-gateway.storeEnabled" -}}
{{- if or .Values.gateway.store.url .Values.gateway.store.existingSecretName }}true{{- end }}
{{- end }}

{{/*
Whether the pods share counters through Redis as far as the chart knows:
a store from a Secret (which holds a Redis URL) or a redis:// value.
*/}}
{{- define "portcullis-gateway.storeShared" -}}
{{- if or .Values.gateway.store.existingSecretName (hasPrefix "redis" (toString (default "" .Values.gateway.store.url))) }}true{{- end }}
{{- end }}

{{/*
The Secret holding the store URL (its password with it), and its key.
*/}}
{{- define "portcullis-gateway.storeSecretName" -}}
{{- .Values.gateway.store.existingSecretName | default (include "portcullis-gateway.fullname" .) }}
{{- end }}

{{- define "portcullis-gateway.storeSecretKey" -}}
{{- if .Values.gateway.store.existingSecretName }}
{{- .Values.gateway.store.existingSecretKey | default "store-url" }}
{{- else }}
{{- "store-url" }}
{{- end }}
{{- end }}

{{/*
Whether the chart creates the Secret: for a token, backup key or store URL
given as a value.
*/}}
{{- define "portcullis-gateway.createSecret" -}}
{{- if or (not .Values.gateway.auth.existingSecretName) (and .Values.gateway.backup.enabled (not .Values.gateway.backup.existingSecretName)) (and .Values.gateway.store.url (not .Values.gateway.store.existingSecretName)) }}true{{- end }}
{{- end }}

{{/*
StatefulSet when every pod needs its own backup claim (volumeClaimTemplates),
else Deployment. Two pods must never share a backup directory: each writes and
cleans up its own temporary files there.
*/}}
{{- define "portcullis-gateway.workloadKind" -}}
{{- $p := .Values.gateway.backup.persistence }}
{{- if and .Values.gateway.backup.enabled $p.enabled (not $p.existingClaim) }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/*
Refuses value combinations that cannot work, before anything is applied.
*/}}
{{- define "portcullis-gateway.validate" -}}
{{- $_ := required "gateway.configuration.uri (the management plane's URL) is required" .Values.gateway.configuration.uri }}
{{- if not .Values.gateway.auth.existingSecretName }}
{{- $_ := required "gateway.auth.key (the gateway token) or gateway.auth.existingSecretName is required" .Values.gateway.auth.key }}
{{- end }}
{{- if and .Values.gateway.backup.enabled (not .Values.gateway.backup.existingSecretName) }}
{{- $_ := required "gateway.backup.key or gateway.backup.existingSecretName is required when gateway.backup.enabled" .Values.gateway.backup.key }}
{{- end }}
{{- $p := .Values.gateway.backup.persistence }}
{{- if and .Values.gateway.backup.enabled $p.enabled $p.existingClaim (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}
{{- fail "gateway.backup.persistence.existingClaim serves one pod: with replicaCount > 1 or autoscaling, leave it empty so that each pod gets its own claim (StatefulSet)" }}
{{- end }}
{{- if and .Values.gateway.tls.enabled (not .Values.gateway.tls.secretName) }}
{{- fail "gateway.tls.secretName (a kubernetes.io/tls Secret) is required when gateway.tls.enabled" }}
{{- end }}
{{- include "portcullis-gateway.validateStore" . }}
{{- end }}

{{/*
The store's values, checked as the gateway checks them (a pod would
otherwise fail to start). Messages never show the URL: it holds a password.
*/}}
{{- define "portcullis-gateway.validateStore" -}}
{{- $s := .Values.gateway.store }}
{{- $url := toString (default "" $s.url) }}
{{- if and $url (ne $url "local") (not (hasPrefix "redis://" $url)) (not (hasPrefix "rediss://" $url)) }}
{{- fail "gateway.store.url must be \"\", local, or start with redis:// or rediss://" }}
{{- end }}
{{- if not (has (toString $s.counting) (list "exact" "approximate")) }}
{{- fail "gateway.store.counting must be exact or approximate" }}
{{- end }}
{{- if not (has (toString $s.onFailure) (list "open" "closed")) }}
{{- fail "gateway.store.onFailure must be open or closed" }}
{{- end }}
{{- $t := int64 $s.timeoutMs }}
{{- if or (lt $t 1) (gt $t 60000) }}
{{- fail "gateway.store.timeoutMs must be 1 to 60000" }}
{{- end }}
{{- $i := int64 $s.syncIntervalMs }}
{{- if or (lt $i 10) (gt $i 60000) }}
{{- fail "gateway.store.syncIntervalMs must be 10 to 60000" }}
{{- end }}
{{- with $s.keyPrefix }}
{{- if not (regexMatch "^[^\\s[:cntrl:]]{1,200}$" (toString .)) }}
{{- fail "gateway.store.keyPrefix must be 1 to 200 characters without spaces or control characters" }}
{{- end }}
{{- end }}
{{- end }}
