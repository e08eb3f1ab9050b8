{{/*
Every caskade template takes an explicit context, never the caller's top level:

  (dict "values" <caskade's values> "root" $)

From this chart's own templates that is (dict "values" .Values "root" .). From an
application chart that depends on caskade as a subchart it is
(dict "values" .Values.caskade "root" $): Helm fills .Values.caskade with this chart's
defaults, and names come from the constant chart name "caskade", so the sidecar your
pod gets points at the ConfigMap, Secret and claim this chart renders for the same
release. "caskade.ctx" in your chart can build it once; see the README.
*/}}

{{/* The chart name and version every name and label is built from. */}}
{{- define "caskade.chartName" -}}caskade{{- end }}
{{- define "caskade.chartVersion" -}}0.1.0{{- end }}

{{- define "caskade.name" -}}
{{- default (include "caskade.chartName" .) .values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "caskade.fullname" -}}
{{- if .values.fullnameOverride }}
{{- .values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "caskade.name" . }}
{{- if contains $name .root.Release.Name }}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "caskade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "caskade.name" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "caskade.labels" -}}
helm.sh/chart: {{ printf "%s-%s" (include "caskade.chartName" .) (include "caskade.chartVersion" .) }}
{{ include "caskade.selectorLabels" . }}
app.kubernetes.io/version: {{ .values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* Names of the objects the sidecar refers to. */}}
{{- define "caskade.configMapName" -}}{{ include "caskade.fullname" . }}-config{{- end }}
{{- define "caskade.claimName" -}}
{{- .values.persistence.persistentVolumeClaim.existingClaim | default (printf "%s-data" (include "caskade.fullname" .)) }}
{{- end }}
{{- define "caskade.serviceAccountName" -}}
{{- if .values.serviceAccount.create }}
{{- .values.serviceAccount.name | default (include "caskade.fullname" .) }}
{{- else }}
{{- .values.serviceAccount.name | default "default" }}
{{- end }}
{{- end }}

{{/* The Secret holding the AUTH password, or nothing when there is no password. */}}
{{- define "caskade.authSecretName" -}}
{{- if .values.auth.existingSecret }}
{{- .values.auth.existingSecret }}
{{- else if .values.auth.generate }}
{{- include "caskade.fullname" . }}-auth
{{- end }}
{{- end }}

{{- define "caskade.image" -}}
{{- if .values.image.digest }}
{{- printf "%s@%s" .values.image.repository .values.image.digest }}
{{- else }}
{{- printf "%s:%s" .values.image.repository .values.image.tag }}
{{- end }}
{{- end }}

{{/* Whether the admin port listens only on the loopback address. */}}
{{- define "caskade.adminLoopback" -}}
{{- if has .values.admin.bind (list "127.0.0.1" "::1" "localhost") }}true{{- end }}
{{- end }}

{{/*
Whether the data directory can be used by one pod at a time only (a node's directory,
or a claim that mounts on one node): a rolling update would start the new pod while
the old one holds the directory's LOCK file or the volume, and wait for ever.
*/}}
{{- define "caskade.dataIsSingleUse" -}}
{{- $p := .values.persistence }}
{{- if eq $p.type "hostPath" }}true
{{- else if eq $p.type "persistentVolumeClaim" }}
{{- if or $p.persistentVolumeClaim.existingClaim (has "ReadWriteOnce" $p.persistentVolumeClaim.accessModes) (has "ReadWriteOncePod" $p.persistentVolumeClaim.accessModes) }}true{{- end }}
{{- end }}
{{- end }}

{{/*
caskade's configuration file: the user's `config` with the settings the chart owns
laid over it (listeners, data directory) and JSON logs unless the user chose.
*/}}
{{- define "caskade.configYaml" -}}
{{- $v := .values }}
{{- $owned := dict "port" (int $v.respPort) "bind" $v.bind "admin" (dict "bind" $v.admin.bind "port" (int $v.adminPort)) "storage" (dict "dir" "/data") }}
{{- if $v.unixSocket.enabled }}
{{- $_ := set $owned "unixsocket" (printf "%s/%s" $v.unixSocket.dir $v.unixSocket.name) }}
{{- end }}
{{- $defaults := dict "log" (dict "format" "json") }}
{{- $cfg := mustMergeOverwrite $defaults (deepCopy (default (dict) $v.config)) $owned }}
{{- toYaml $cfg }}
{{- end }}

{{/* An HTTP probe on the admin port, or an exec probe when it is loopback-only. */}}
{{- define "caskade.probe" -}}
{{- if include "caskade.adminLoopback" .ctx }}
exec:
  command: ["/usr/local/bin/caskade", "probe", {{ if ne .path "/healthz" }}"--ready", {{ end }}"--addr", "127.0.0.1:{{ .ctx.values.adminPort }}"]
{{- else }}
httpGet:
  path: {{ .path }}
  port: caskade-admin
{{- end }}
{{- toYaml .settings | nindent 0 }}
{{- end }}

{{/*
Whether this chart renders its example (Deployment, Service, PodDisruptionBudget,
`helm test` pod): when example.enabled and the chart is installed on its own. As a
subchart of an application chart it renders only what the application's pods refer
to (ConfigMap, Secret, claim) and the monitoring objects.
Takes the chart's own top-level context.
*/}}
{{- define "caskade.exampleOn" -}}
{{- if and .Values.example.enabled (not (contains "/charts/" .Template.BasePath)) }}true{{- end }}
{{- end }}

{{/* The labels of the pods carrying caskade, for monitoring and network policy. */}}
{{- define "caskade.metricsSelector" -}}
{{- with .values.metrics.selector }}
{{- toYaml . }}
{{- else }}
{{- include "caskade.selectorLabels" . }}
{{- end }}
{{- end }}

{{/* Monitoring needs the admin port reachable from outside the pod. */}}
{{- define "caskade.requireScrapable" -}}
{{- if include "caskade.adminLoopback" . }}
{{- fail "metrics.serviceMonitor / metrics.podMonitor need the admin port reachable: set admin.bind to 0.0.0.0 (and consider networkPolicy.enabled)" }}
{{- end }}
{{- end }}
