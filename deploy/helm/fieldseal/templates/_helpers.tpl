{{/* Chart name, shortened to the 63 characters a label value allows. */}}
{{- define "fieldseal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "fieldseal.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "fieldseal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fieldseal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "fieldseal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fieldseal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The service account the pods run as. */}}
{{- define "fieldseal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fieldseal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding config.json. */}}
{{- define "fieldseal.configSecretName" -}}
{{- default (printf "%s-config" (include "fieldseal.fullname" .)) .Values.config.existingSecret }}
{{- end }}

{{/* The image reference: by digest when one is given. */}}
{{- define "fieldseal.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Refuses values combinations that cannot work, with a message saying why. */}}
{{- define "fieldseal.validate" -}}
{{- if not (has .Values.keyStore.kind (list "aws" "local")) }}
{{- fail (printf "keyStore.kind must be aws or local, not %q" .Values.keyStore.kind) }}
{{- end }}
{{- if eq .Values.keyStore.kind "local" }}
{{- if .Values.autoscaling.enabled }}
{{- fail "keyStore.kind=local keeps keyrings on one pod's volume: set autoscaling.enabled=false (and replicaCount=1), or use keyStore.kind=aws" }}
{{- end }}
{{- if ne (int .Values.replicaCount) 1 }}
{{- fail "keyStore.kind=local keeps keyrings on one pod's volume: set replicaCount=1, or use keyStore.kind=aws" }}
{{- end }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) }}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- range $name, $value := .Values.env }}
{{- if has $name (list "FIELDSEAL_HOST" "FIELDSEAL_PORT" "FIELDSEAL_KEY_STORE" "FIELDSEAL_CONFIG" "FIELDSEAL_DATA_DIR" "FIELDSEAL_TLS_CERT_FILE" "FIELDSEAL_TLS_KEY_FILE" "FIELDSEAL_TLS_CLIENT_CA_FILE" "FIELDSEAL_SHUTDOWN_GRACE_MS") }}
{{- fail (printf "env.%s is set by the chart from its own values; see values.yaml" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Every container: no privilege, no capabilities, nothing writable outside its volumes. */}}
{{- define "fieldseal.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}
