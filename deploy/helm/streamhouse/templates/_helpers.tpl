{{/* The chart's name, or nameOverride. */}}
{{- define "streamhouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: RELEASE-CHART unless the release already names the chart. */}}
{{- define "streamhouse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "streamhouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamhouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "streamhouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "streamhouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The Secret holding the catalog URL and the credentials. */}}
{{- define "streamhouse.secretName" -}}
{{- default (include "streamhouse.fullname" .) .Values.secret.name -}}
{{- end -}}

{{/* The port each agent advertises. */}}
{{- define "streamhouse.advertisedPort" -}}
{{- if .Values.advertise.port -}}
{{- .Values.advertise.port -}}
{{- else if .Values.hostPort.enabled -}}
{{- .Values.hostPort.port -}}
{{- else -}}
{{- .Values.ports.kafka -}}
{{- end -}}
{{- end -}}

{{/* The agents' settings as TOML: strings quoted, whole numbers as integers. */}}
{{- define "streamhouse.settingsToml" -}}
{{- range $key, $value := .Values.settings }}
{{- if has $key (list "listen" "advertise" "metrics_listen" "catalog" "config") }}
{{- fail (printf "settings.%s is set by the chart; leave it out of settings" $key) }}
{{- end }}
{{- if kindIs "string" $value }}
{{ $key }} = {{ $value | quote }}
{{- else if kindIs "bool" $value }}
{{ $key }} = {{ $value }}
{{- else if or (kindIs "float64" $value) (kindIs "int" $value) (kindIs "int64" $value) }}
{{ $key }} = {{ $value | int64 }}
{{- else }}
{{- fail (printf "settings.%s: only strings, booleans and whole numbers are settings" $key) }}
{{- end }}
{{- end }}
{{- end -}}
