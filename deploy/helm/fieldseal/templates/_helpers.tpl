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
{{- /* Names go into the manifests as YAML scalars: anything but a Kubernetes name could add structure. */}}
{{- range $key, $value := dict "nameOverride" .Values.nameOverride "fullnameOverride" .Values.fullnameOverride "config.existingSecret" .Values.config.existingSecret "tls.secretName" .Values.tls.secretName "keyStore.local.existingClaim" .Values.keyStore.local.existingClaim "serviceAccount.name" .Values.serviceAccount.name }}
{{- if and $value (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" (toString $value))) }}
{{- fail (printf "%s must be a Kubernetes object name (lower-case letters, digits, '-' and '.')" $key) }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.env }}
{{- if not (regexMatch "^[A-Z_][A-Z0-9_]*$" $name) }}
{{- fail (printf "env.%q is not an environment variable name" $name) }}
{{- end }}
{{- end }}
{{- if not (has .Values.listenAddress (list "0.0.0.0" "::")) }}
{{- fail "listenAddress must be 0.0.0.0 (IPv4) or :: (IPv6 and IPv4)" }}
{{- end }}
{{- if not (has .Values.service.type (list "ClusterIP" "NodePort" "LoadBalancer")) }}
{{- fail "service.type must be ClusterIP, NodePort or LoadBalancer" }}
{{- end }}
{{- if not (has .Values.image.pullPolicy (list "Always" "IfNotPresent" "Never")) }}
{{- fail "image.pullPolicy must be Always, IfNotPresent or Never" }}
{{- end }}
{{- if and .Values.tls.clientCaKey (not (regexMatch "^[-._a-zA-Z0-9]+$" (toString .Values.tls.clientCaKey))) }}
{{- fail "tls.clientCaKey must be a Secret key (letters, digits, '-', '_' and '.')" }}
{{- end }}
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
{{- if and .Values.autoscaling.enabled (not (dig "requests" "cpu" "" .Values.resources)) }}
{{- fail "autoscaling.enabled needs resources.requests.cpu: the autoscaler's CPU utilisation is a share of the request, and without one it never scales" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- range $name, $value := .Values.env }}
{{- if eq $name "FIELDSEAL_TLS_REQUIRE_CLIENT_CERT" }}
{{- fail "env.FIELDSEAL_TLS_REQUIRE_CLIENT_CERT: the kubelet's probes present no client certificate, so every probe would fail and the pods would never be ready; the chart keeps client certificates optional (tls.clientCaKey) and sets it to false" }}
{{- end }}
{{- if has $name (list "FIELDSEAL_HOST" "FIELDSEAL_PORT" "FIELDSEAL_KEY_STORE" "FIELDSEAL_CONFIG" "FIELDSEAL_DATA_DIR" "FIELDSEAL_TLS_CERT_FILE" "FIELDSEAL_TLS_KEY_FILE" "FIELDSEAL_TLS_CLIENT_CA_FILE" "FIELDSEAL_SHUTDOWN_GRACE_MS") }}
{{- fail (printf "env.%s is set by the chart from its own values; see values.yaml" $name) }}
{{- end }}
{{- /* env is written into the Deployment, which more people and tools may read than its Secrets. */}}
{{- if has $name (list "FIELDSEAL_COGNIGY_API_KEY" "FIELDSEAL_COGNIGY_BEARER_TOKEN") }}
{{- fail (printf "env.%s is a secret and env is written in clear into the Deployment: put it into the config Secret's config.json (cognigy.apiKey / cognigy.bearerToken, with config.existingSecret)" $name) }}
{{- end }}
{{- if has $name (list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" "AWS_SESSION_TOKEN") }}
{{- fail (printf "env.%s would put AWS credentials in clear into the Deployment: give the pods an IAM role (serviceAccount.irsaRoleArn, or EKS Pod Identity) instead" $name) }}
{{- end }}
{{- end }}
{{- if hasKey .Values.serviceAccount.annotations "eks.amazonaws.com/role-arn" }}
{{- fail "serviceAccount.annotations must not hold eks.amazonaws.com/role-arn: set the role with serviceAccount.irsaRoleArn, which is checked to be an IAM role ARN" }}
{{- end }}
{{- if and .Values.serviceAccount.irsaRoleArn (not .Values.serviceAccount.create) }}
{{- fail "serviceAccount.irsaRoleArn needs serviceAccount.create=true: the chart annotates only a ServiceAccount it creates (annotate your own one yourself)" }}
{{- end }}
{{- range $name := list "app.kubernetes.io/name" "app.kubernetes.io/instance" }}
{{- if hasKey $.Values.podLabels $name }}
{{- fail (printf "podLabels.%s would replace a label the Deployment, Service and policies select the pods by" $name) }}
{{- end }}
{{- end }}
{{- if hasKey .Values.podAnnotations "checksum/config" }}
{{- fail "podAnnotations.checksum/config is the chart's own (it rolls the pods when the config Secret changes)" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (eq .Values.keyStore.kind "aws") }}
{{- $fewest := ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled | int }}
{{- if lt $fewest 2 }}
{{- fail (printf "podDisruptionBudget.enabled with as few as %d pod: a node drain may evict it and the service is gone; set autoscaling.minReplicas (or replicaCount without autoscaling) to 2 or more, or podDisruptionBudget.enabled=false" $fewest) }}
{{- end }}
{{- $most := .Values.podDisruptionBudget.maxUnavailable }}
{{- if or (and (kindIs "string" $most) (not (regexMatch "^([1-9][0-9]?|100)%$" $most))) (and (not (kindIs "string" $most)) (lt (int $most) 1)) }}
{{- fail (printf "podDisruptionBudget.maxUnavailable %v lets no pod be evicted, so every node drain blocks: use 1 or more (or a percentage from 1%%)" $most) }}
{{- end }}
{{- /* A percentage is rounded up to whole pods, as the disruption controller does. */}}
{{- $pods := ternary (div (add (mul (int (trimSuffix "%" (toString $most))) $fewest) 99) 100) (int $most) (kindIs "string" $most) }}
{{- if ge (int $pods) $fewest }}
{{- fail (printf "podDisruptionBudget.maxUnavailable %v lets a drain evict all of as few as %d pods at once: keep it below the fewest pods" $most $fewest) }}
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
