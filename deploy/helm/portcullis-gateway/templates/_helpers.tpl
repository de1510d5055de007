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
Whether the chart creates the Secret: for a token or backup key given as a value.
*/}}
{{- define "portcullis-gateway.createSecret" -}}
{{- if or (not .Values.gateway.auth.existingSecretName) (and .Values.gateway.backup.enabled (not .Values.gateway.backup.existingSecretName)) }}true{{- end }}
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
{{- end }}
