{{/*
Names and labels. Every helper takes a context dict {root, values}: root is
the including chart's top-level context (.Release, .Chart), values logveil's
values (.Values in this chart, .Values.logveil in a chart that has logveil as
a dependency). The names depend on the release only, so this chart and an
including chart compute the same ones.
*/}}

{{- define "logveil.fullname" -}}
{{- $v := .values -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "logveil" $v.nameOverride -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "logveil.labels" -}}
app.kubernetes.io/name: logveil
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "logveil-%s" .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The label the Service, NetworkPolicy and example select pods by. */}}
{{- define "logveil.podSelector" -}}
logveil.io/sidecar: {{ include "logveil.fullname" . }}
{{- end -}}

{{/* The tag is a value, not the chart's appVersion: included from an
application chart, .root.Chart is that chart. */}}
{{- define "logveil.image" -}}
{{- printf "%s:%s" .values.image.repository .values.image.tag -}}
{{- end -}}

{{/* logveil expands ${VAR} in config values; $$ is a literal $. */}}
{{- define "logveil.literal" -}}
{{- . | replace "$" "$$" -}}
{{- end -}}

{{/* The port of an http(s) URL, explicit or by its scheme. */}}
{{- define "logveil.urlPort" -}}
{{- $u := urlParse . -}}
{{- $hostport := splitList ":" $u.host -}}
{{- if gt (len $hostport) 1 -}}
{{- last $hostport -}}
{{- else if eq $u.scheme "https" -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}
