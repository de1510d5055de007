{{/*
The gateway's pod template, shared by the Deployment and the StatefulSet.
*/}}
{{- define "portcullis-gateway.podTemplate" -}}
metadata:
  {{- if or (include "portcullis-gateway.createSecret" .) .Values.podAnnotations }}
  annotations:
    {{- if include "portcullis-gateway.createSecret" . }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  labels:
    {{- include "portcullis-gateway.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  serviceAccountName: {{ include "portcullis-gateway.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # The gateway drains for PORTCULLIS_SHUTDOWN_GRACE after SIGTERM; Kubernetes
  # waits a little longer before SIGKILL.
  terminationGracePeriodSeconds: {{ add (int .Values.gateway.shutdownGraceSeconds) (int .Values.gateway.terminationGraceExtraSeconds) }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: gateway
      image: {{ include "portcullis-gateway.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["gateway"]
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        {{- if .Values.gateway.tls.enabled }}
        - name: https
          containerPort: 8081
          protocol: TCP
        {{- end }}
        - name: ops
          containerPort: 9090
          protocol: TCP
      env:
        - name: PORTCULLIS_MANAGEMENT_URL
          value: {{ .Values.gateway.configuration.uri | quote }}
        - name: PORTCULLIS_GATEWAY_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ include "portcullis-gateway.tokenSecretName" . }}
              key: {{ include "portcullis-gateway.tokenSecretKey" . }}
        {{- with .Values.gateway.configuration.publicKey }}
        - name: PORTCULLIS_MANAGEMENT_PUBLIC_KEY
          value: {{ . | quote }}
        {{- end }}
        {{- if .Values.gateway.configuration.caConfigMap }}
        - name: PORTCULLIS_CA
          value: {{ printf "/etc/portcullis/ca/%s" .Values.gateway.configuration.caConfigMapKey | quote }}
        {{- end }}
        - name: PORTCULLIS_LISTEN
          value: "0.0.0.0:8080"
        - name: PORTCULLIS_OPS_LISTEN
          value: "0.0.0.0:9090"
        {{- if .Values.gateway.tls.enabled }}
        - name: PORTCULLIS_HTTPS_LISTEN
          value: "0.0.0.0:8081"
        - name: PORTCULLIS_TLS_CERT
          value: /etc/portcullis/tls/tls.crt
        - name: PORTCULLIS_TLS_KEY
          value: /etc/portcullis/tls/tls.key
        {{- end }}
        {{- if .Values.gateway.backup.enabled }}
        - name: PORTCULLIS_BACKUP_DIR
          value: /var/lib/portcullis/backup
        - name: PORTCULLIS_BACKUP_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "portcullis-gateway.backupSecretName" . }}
              key: {{ include "portcullis-gateway.backupSecretKey" . }}
        {{- end }}
        {{- if include "portcullis-gateway.storeEnabled" . }}
        {{- $store := .Values.gateway.store }}
        # The URL carries the Redis password: only ever from a Secret.
        - name: PORTCULLIS_STORE
          valueFrom:
            secretKeyRef:
              name: {{ include "portcullis-gateway.storeSecretName" . }}
              key: {{ include "portcullis-gateway.storeSecretKey" . }}
        - name: PORTCULLIS_STORE_COUNTING
          value: {{ $store.counting | quote }}
        - name: PORTCULLIS_STORE_ON_FAILURE
          value: {{ $store.onFailure | quote }}
        - name: PORTCULLIS_STORE_TIMEOUT_MS
          value: {{ $store.timeoutMs | int64 | quote }}
        - name: PORTCULLIS_STORE_SYNC_INTERVAL_MS
          value: {{ $store.syncIntervalMs | int64 | quote }}
        {{- with $store.keyPrefix }}
        - name: PORTCULLIS_STORE_KEY_PREFIX
          value: {{ . | toString | quote }}
        {{- end }}
        {{- end }}
        - name: PORTCULLIS_SHUTDOWN_GRACE
          value: {{ .Values.gateway.shutdownGraceSeconds | int | quote }}
        - name: PORTCULLIS_LOG
          value: {{ .Values.gateway.log | quote }}
        - name: PORTCULLIS_LOG_FORMAT
          value: {{ .Values.gateway.logFormat | quote }}
        {{- range $name, $value := .Values.gateway.env }}
        {{- /* YAML numbers arrive as float64: print 10485760, not 1.048576e+07. */}}
        {{- $v := $value }}
        {{- if and (kindIs "float64" $value) (eq ($value | int64 | float64) $value) }}
        {{- $v = $value | int64 }}
        {{- end }}
        - name: {{ $name }}
          value: {{ $v | toString | quote }}
        {{- end }}
        {{- with .Values.gateway.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.gateway.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.startupProbe }}
      startupProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.lifecycle }}
      lifecycle:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      {{- $mounts := or .Values.gateway.backup.enabled .Values.gateway.configuration.caConfigMap .Values.gateway.tls.enabled .Values.extraVolumeMounts }}
      {{- if $mounts }}
      volumeMounts:
        {{- if .Values.gateway.backup.enabled }}
        - name: backup
          mountPath: /var/lib/portcullis/backup
        {{- end }}
        {{- if .Values.gateway.configuration.caConfigMap }}
        - name: management-ca
          mountPath: /etc/portcullis/ca
          readOnly: true
        {{- end }}
        {{- if .Values.gateway.tls.enabled }}
        - name: tls
          mountPath: /etc/portcullis/tls
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
  {{- $p := .Values.gateway.backup.persistence }}
  {{- $backupInPod := and .Values.gateway.backup.enabled (or (not $p.enabled) $p.existingClaim) }}
  {{- if or $backupInPod .Values.gateway.configuration.caConfigMap .Values.gateway.tls.enabled .Values.extraVolumes }}
  volumes:
    {{- if $backupInPod }}
    - name: backup
      {{- if and $p.enabled $p.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ $p.existingClaim }}
      {{- else }}
      # Survives container restarts (a crash during a management outage), not
      # pod rescheduling: see gateway.backup.persistence.
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- with .Values.gateway.configuration.caConfigMap }}
    - name: management-ca
      configMap:
        name: {{ . }}
    {{- end }}
    {{- if .Values.gateway.tls.enabled }}
    - name: tls
      secret:
        secretName: {{ .Values.gateway.tls.secretName }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- tpl (toYaml .) $ | nindent 4 }}
  {{- end }}
{{- end }}
