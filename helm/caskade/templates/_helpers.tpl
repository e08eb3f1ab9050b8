{{/*
Names and labels.
*/}}
{{- define "caskade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "caskade.fullname" -}}
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

{{- define "caskade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "caskade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "caskade.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "caskade.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
caskade's configuration file: the user's `config` with the settings the chart owns
laid over it.
*/}}
{{- define "caskade.configYaml" -}}
{{- $owned := dict "port" (int .Values.respPort) "bind" .Values.bind "admin" (dict "bind" "0.0.0.0" "port" (int .Values.adminPort)) "storage" (dict "dir" "/data") }}
{{- if .Values.unixSocket.enabled }}
{{- $_ := set $owned "unixsocket" (printf "%s/%s" .Values.unixSocket.dir .Values.unixSocket.name) }}
{{- end }}
{{- $cfg := mustMergeOverwrite (deepCopy (default (dict) .Values.config)) $owned }}
{{- toYaml $cfg }}
{{- end }}

{{/*
The caskade sidecar container. Include it in an application pod's `containers` (or,
with sidecar.native, its `initContainers`), next to the volumes from
"caskade.volumes":

  containers:
    - name: app
      ...
    {{- include "caskade.sidecar" . | nindent 4 }}
  volumes:
    {{- include "caskade.volumes" . | nindent 4 }}
*/}}
{{- define "caskade.sidecar" -}}
- name: caskade
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: ["--config", "/etc/caskade/caskade.yaml"]
  {{- if .Values.auth.existingSecret }}
  env:
    - name: CASKADE_REQUIREPASS
      valueFrom:
        secretKeyRef:
          name: {{ .Values.auth.existingSecret }}
          key: {{ .Values.auth.secretKey }}
  {{- end }}
  ports:
    - name: resp
      containerPort: {{ .Values.respPort }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.adminPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /readyz
      port: admin
    {{- toYaml .Values.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: caskade-config
      mountPath: /etc/caskade
      readOnly: true
    - name: caskade-data
      mountPath: /data
    {{- if ne .Values.plugins.source "none" }}
    - name: caskade-plugins
      mountPath: {{ .Values.plugins.mountPath }}
      readOnly: true
    {{- end }}
    {{- if .Values.unixSocket.enabled }}
    - name: caskade-socket
      mountPath: {{ .Values.unixSocket.dir }}
    {{- end }}
{{- end }}

{{/*
Init containers caskade needs (copying plugins out of an image), if any.
*/}}
{{- define "caskade.initContainers" -}}
{{- if eq .Values.plugins.source "initContainer" }}
- name: caskade-plugins
  image: {{ .Values.plugins.image.reference | quote }}
  imagePullPolicy: {{ .Values.plugins.image.pullPolicy }}
  command: ["sh", "-c", "cp -R /plugins/. /caskade-plugins/"]
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: caskade-plugins
      mountPath: /caskade-plugins
{{- end }}
{{- end }}

{{/*
The volumes the sidecar mounts.
*/}}
{{- define "caskade.volumes" -}}
- name: caskade-config
  configMap:
    name: {{ include "caskade.fullname" . }}-config
- name: caskade-data
  {{- if eq .Values.persistence.type "emptyDir" }}
  emptyDir:
    {{- with .Values.persistence.emptyDir.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ .Values.persistence.emptyDir.sizeLimit }}
  {{- else if eq .Values.persistence.type "hostPath" }}
  hostPath:
    path: {{ .Values.persistence.hostPath.path }}
    type: {{ .Values.persistence.hostPath.type }}
  {{- else }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.persistentVolumeClaim.existingClaim | default (printf "%s-data" (include "caskade.fullname" .)) }}
  {{- end }}
{{- if eq .Values.plugins.source "configMap" }}
- name: caskade-plugins
  configMap:
    name: {{ required "plugins.configMap.name is required when plugins.source is configMap" .Values.plugins.configMap.name }}
{{- else if eq .Values.plugins.source "image" }}
- name: caskade-plugins
  image:
    reference: {{ required "plugins.image.reference is required when plugins.source is image" .Values.plugins.image.reference | quote }}
    pullPolicy: {{ .Values.plugins.image.pullPolicy }}
{{- else if eq .Values.plugins.source "initContainer" }}
- name: caskade-plugins
  emptyDir: {}
{{- end }}
{{- if .Values.unixSocket.enabled }}
- name: caskade-socket
  emptyDir: {}
{{- end }}
{{- end }}

{{/*
Pod annotations: Prometheus scraping and a config checksum that restarts pods when the
configuration changes.
*/}}
{{- define "caskade.podAnnotations" -}}
checksum/caskade-config: {{ include "caskade.configYaml" . | sha256sum }}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.adminPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}
