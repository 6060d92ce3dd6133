{{/*
logveil.sidecar: what an application chart includes to run logveil next to
its application container. One template, called once per place in the
manifest it fills, with a dict:

  root    the including chart's top-level context ($)
  values  logveil's values ($.Values.logveil when logveil is a dependency;
          default: root.Values)
  part    podLabels        labels for the pod template (the Service,
                           NetworkPolicy and ServiceMonitor select them)
          podAnnotations   the checksum of what a reload cannot change (all of the
                           config without reload.watchConfig): a change there
                           rolls the pods
          container        the logveil container (a list item)
          volumes          its volumes (list items)
          appVolumeMounts  sharedVolume mode: the mount for the application
                           container (list items; nothing in podLogs mode)
          configmap        the ConfigMap with logveil.yaml (a whole manifest)

An example is templates/example-deployment.yaml; README.md, "Deploying with
Helm", shows the same from an application chart.
*/}}
{{- define "logveil.sidecar" -}}
{{- $ctx := dict "root" .root "values" (default .root.Values .values) -}}
{{- if eq .part "podLabels" -}}
{{ include "logveil.podSelector" $ctx }}
{{- else if eq .part "podAnnotations" -}}
checksum/logveil-config: {{ include "logveil.restartConfig" $ctx | sha256sum }}
{{- else if eq .part "container" -}}
{{ include "logveil.container" $ctx }}
{{- else if eq .part "volumes" -}}
{{ include "logveil.volumes" $ctx }}
{{- else if eq .part "appVolumeMounts" -}}
{{- if eq $ctx.values.input.mode "sharedVolume" -}}
- name: logveil-app-logs
  mountPath: {{ $ctx.values.input.sharedVolume.mountPath }}
{{- end -}}
{{- else if eq .part "configmap" -}}
{{ include "logveil.configmap" $ctx }}
{{- else -}}
{{- fail (printf "logveil.sidecar: unknown part %q, expected podLabels, podAnnotations, container, volumes, appVolumeMounts or configmap" .part) -}}
{{- end -}}
{{- end -}}

{{/* The config less the sections run --watch-config reloads (sidecar/
reload.c): what only a restart applies. */}}
{{- define "logveil.restartConfig" -}}
{{- if .values.reload.watchConfig -}}
{{- omit (include "logveil.config" . | fromYaml) "environment" "log_level" "redact" "sampling" "enrich" | toYaml -}}
{{- else -}}
{{- include "logveil.config" . -}}
{{- end -}}
{{- end -}}

{{/* Paths inside the container. */}}
{{- define "logveil.paths" -}}
config: /etc/logveil/config/logveil.yaml
state: /var/lib/logveil
secrets: /etc/logveil/secrets
podinfo: /etc/logveil/podinfo
podLogs: /var/log/pod
{{- end -}}

{{/* The Secrets the outputs and redaction name: a list of {name, key}, each
mounted at <secrets>/<name>/<key>. */}}
{{- define "logveil.secretRefs" -}}
{{- $v := .values -}}
{{- $refs := list -}}
{{- range $v.redact.hmacKeys -}}
{{- $refs = append $refs .secret -}}
{{- end -}}
{{- if $v.redact.hmacKeySecret.name -}}
{{- $refs = append $refs $v.redact.hmacKeySecret -}}
{{- end -}}
{{- if $v.audit.enabled -}}
{{- $refs = append $refs $v.audit.keySecret -}}
{{- end -}}
{{- $es := $v.outputs.elasticsearch -}}
{{- if $es.enabled -}}
{{- range (list $es.passwordSecret $es.apiKeySecret $es.tls.caSecret) -}}
{{- if .name }}{{ $refs = append $refs . }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $loki := $v.outputs.loki -}}
{{- if $loki.enabled -}}
{{- range (list $loki.passwordSecret $loki.bearerTokenSecret $loki.tls.caSecret) -}}
{{- if .name }}{{ $refs = append $refs . }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $seen := dict -}}
{{- $out := list -}}
{{- range $refs -}}
{{- $id := printf "%s/%s" .name .key -}}
{{- if not (hasKey $seen $id) -}}
{{- $_ := set $seen $id true -}}
{{- $out = append $out (dict "name" .name "key" .key) -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{- define "logveil.secretPath" -}}
{{- printf "/etc/logveil/secrets/%s/%s" .name .key -}}
{{- end -}}

{{- define "logveil.container" -}}
{{- $v := .values -}}
{{- $p := include "logveil.paths" . | fromYaml -}}
{{- $secrets := include "logveil.secretRefs" . | fromYamlArray -}}
{{- $podLogs := eq $v.input.mode "podLogs" -}}
- name: logveil
  image: {{ include "logveil.image" . }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["run", "--config", {{ $p.config | quote }}{{ if $v.reload.watchConfig }}, "--watch-config"{{ end }}]
  env:
    # Kubernetes fields for enrichment (filters/enrich.c), from the downward
    # API: no API-server access, no RBAC.
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_NAMESPACE
      valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
    - name: POD_UID
      valueFrom: {fieldRef: {fieldPath: metadata.uid}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: NODE_NAME
      valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
    - name: CONTAINER_NAME
      value: {{ $v.app.containerName | quote }}
  ports:
    - name: logveil-admin
      containerPort: {{ $v.admin.port }}
      protocol: TCP
    - name: logveil-probe
      containerPort: {{ $v.admin.probePort }}
      protocol: TCP
  startupProbe:
    httpGet: {path: /livez, port: logveil-probe}
    {{- toYaml $v.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet: {path: /livez, port: logveil-probe}
    {{- toYaml $v.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet: {path: /readyz, port: logveil-probe}
    {{- toYaml $v.probes.readiness | nindent 4 }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: {{ $v.securityContext.runAsUser }}
    runAsGroup: {{ ternary $v.input.podLogs.runAsGroup $v.securityContext.runAsGroup $podLogs }}
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities: {drop: [ALL]}
    seccompProfile: {type: RuntimeDefault}
  volumeMounts:
    - name: logveil-config
      mountPath: {{ dir $p.config }}
      readOnly: true
    - name: logveil-state
      mountPath: {{ $p.state }}
    {{- if $v.enrich.labels }}
    - name: logveil-podinfo
      mountPath: {{ $p.podinfo }}
      readOnly: true
    {{- end }}
    {{- if $secrets }}
    - name: logveil-secrets
      mountPath: {{ $p.secrets }}
      readOnly: true
    {{- end }}
    {{- if $podLogs }}
    # Only the application container's directory of this pod in the
    # node's /var/log/pods.
    - name: logveil-pod-logs
      mountPath: {{ printf "%s/%s" $p.podLogs $v.app.containerName }}
      subPathExpr: {{ printf "$(POD_NAMESPACE)_$(POD_NAME)_$(POD_UID)/%s" $v.app.containerName }}
      readOnly: true
    {{- else }}
    - name: logveil-app-logs
      mountPath: {{ $v.input.sharedVolume.mountPath }}
      readOnly: true
    {{- end }}
{{- end -}}

{{- define "logveil.volumes" -}}
{{- $v := .values -}}
{{- $secrets := include "logveil.secretRefs" . | fromYamlArray -}}
- name: logveil-config
  configMap:
    name: {{ include "logveil.fullname" . }}
- name: logveil-state
  emptyDir:
    sizeLimit: {{ $v.state.sizeLimit }}
{{- if $v.enrich.labels }}
- name: logveil-podinfo
  downwardAPI:
    items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
{{- end }}
{{- if $secrets }}
- name: logveil-secrets
  projected:
    # Readable by the logveil user without a pod fsGroup; the volume is
    # mounted in the logveil container only.
    defaultMode: 0444
    sources:
      {{- range $secrets }}
      - secret:
          name: {{ .name }}
          items:
            - key: {{ .key }}
              path: {{ printf "%s/%s" .name .key }}
      {{- end }}
{{- end }}
{{- if eq $v.input.mode "podLogs" }}
- name: logveil-pod-logs
  hostPath:
    path: {{ $v.input.podLogs.hostPath }}
    type: Directory
{{- else }}
- name: logveil-app-logs
  emptyDir:
    sizeLimit: {{ $v.input.sharedVolume.sizeLimit }}
{{- end }}
{{- end -}}

{{- define "logveil.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "logveil.fullname" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "logveil.labels" . | nindent 4 }}
data:
  logveil.yaml: |
    # Rendered by the logveil chart from its values; check it with
    #   logveil check-config logveil.yaml
    {{- include "logveil.config" . | nindent 4 }}
{{- end -}}
