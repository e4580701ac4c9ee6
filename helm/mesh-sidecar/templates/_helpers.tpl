{{/* Chart name, truncated to the 63 characters a label value may have. */}}
{{- define "mesh-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's resources. A release name that already contains the chart name is
used as it is, so `helm install mesh-sidecar ./helm/mesh-sidecar` does not give
"mesh-sidecar-mesh-sidecar".
*/}}
{{- define "mesh-sidecar.fullname" -}}
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

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "mesh-sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "mesh-sidecar.labels" -}}
helm.sh/chart: {{ include "mesh-sidecar.chart" . }}
{{ include "mesh-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.sidecar.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods; they never change across upgrades. */}}
{{- define "mesh-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mesh-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mesh-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mesh-sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mesh-sidecar.sidecarImage" -}}
{{- printf "%s:%s" .Values.sidecar.image.repository (.Values.sidecar.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "mesh-sidecar.appImage" -}}
{{- $repository := required "app.image.repository is required: the image of your application" .Values.app.image.repository }}
{{- printf "%s:%s" $repository (.Values.app.image.tag | default "latest") }}
{{- end }}

{{/*
The sidecar config document as YAML: `sidecar.config` merged over the chart's defaults (maps
merge key by key, lists and scalars from `sidecar.config` win). The chart's defaults only use
keys the config schema has today; everything else comes from the user's values.
*/}}
{{- define "mesh-sidecar.config" -}}
{{- $defaults := dict
  "admin" (dict "port" 15000)
  "ingress" (dict "port" 15006 "target" (printf "http://127.0.0.1:%d" (int .Values.app.port)))
}}
{{- $config := mustMergeOverwrite $defaults (deepCopy (.Values.sidecar.config | default dict)) }}
{{- toYaml $config }}
{{- end }}

{{/*
Ports of the sidecar's listeners, read from the merged config so that a port changed in
`sidecar.config` moves the container ports, probes, Service and NetworkPolicy with it.
Call with (dict "root" $ "listener" "admin").
*/}}
{{- define "mesh-sidecar.port" -}}
{{- $defaults := dict "admin" 15000 "egress" 15001 "bridge" 15002 "ingress" 15006 }}
{{- $config := include "mesh-sidecar.config" .root | fromYaml }}
{{- $section := get $config .listener | default dict }}
{{- if not (kindIs "map" $section) }}{{ $section = dict }}{{ end }}
{{- int (get $section "port" | default (get $defaults .listener)) }}
{{- end }}

{{/* Config problems the schema of values cannot express; each fails the render with a clear message. */}}
{{- define "mesh-sidecar.validate" -}}
{{- $config := include "mesh-sidecar.config" . | fromYaml }}
{{- $shutdown := get $config "shutdown" | default dict }}
{{- $drainDelayMs := int (get $shutdown "drainDelayMs" | default 5000) }}
{{- $timeoutMs := int (get $shutdown "timeoutMs" | default 20000) }}
{{- $neededMs := add $drainDelayMs $timeoutMs }}
{{- if not .Values.sidecar.native }}
{{- $neededMs = add $neededMs (mul (int .Values.sidecar.preStopSleepSeconds) 1000) }}
{{- end }}
{{- if lt (mul (int .Values.terminationGracePeriodSeconds) 1000) (int $neededMs) }}
{{- fail (printf "terminationGracePeriodSeconds (%d s) is shorter than the sidecar's shutdown (drainDelayMs %d + timeoutMs %d%s = %d ms): raise it or shorten sidecar.config.shutdown" (int .Values.terminationGracePeriodSeconds) $drainDelayMs $timeoutMs (ternary "" (printf " + preStopSleepSeconds %d s" (int .Values.sidecar.preStopSleepSeconds)) .Values.sidecar.native) (int $neededMs)) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (kindIs "invalid" .Values.autoscaling.targetCPUUtilizationPercentage) (kindIs "invalid" .Values.autoscaling.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling.enabled needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- if and .Values.sidecar.native (not (semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version)) }}
{{- fail (printf "sidecar.native=true needs Kubernetes 1.29 or newer (native sidecar containers); this cluster is %s: set sidecar.native=false" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- end }}
