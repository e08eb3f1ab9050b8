{{/*
The pieces an application pod includes, each taking the context described in
_helpers.tpl. In the pod template of your chart:

  {{- $caskade := dict "values" .Values.caskade "root" $ }}
  metadata:
    annotations:
      {{- include "caskade.podAnnotations" $caskade | nindent 8 }}
  spec:
    {{- with include "caskade.initContainers" $caskade }}
    initContainers:
      {{- . | nindent 8 }}
    {{- end }}
    containers:
      - name: app
        ...
      {{- include "caskade.sidecar" $caskade | nindent 8 }}
    volumes:
      {{- include "caskade.volumes" $caskade | nindent 8 }}

"caskade.initContainers" holds the data-directory permission fix (hostPath), the
plugin copy (plugins.source initContainer) and, with sidecar.native, caskade itself
(an init container with restartPolicy Always, after the others); "caskade.sidecar" is
then empty. The ConfigMap, the generated auth Secret and the claim are rendered by this
chart for the same release; a chart that copies these templates instead of depending
on caskade renders them with "caskade.configMap", "caskade.authSecret" and
"caskade.claim".
*/}}

{{- define "caskade.container" -}}
{{- $v := .values }}
{{- $secret := include "caskade.authSecretName" . }}
- name: caskade
  image: {{ include "caskade.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: {{ concat (list "--config" "/etc/caskade/caskade.yaml") $v.extraArgs | toJson }}
  {{- if or $secret $v.extraEnv }}
  env:
    {{- if $secret }}
    - name: CASKADE_REQUIREPASS
      valueFrom:
        secretKeyRef:
          name: {{ $secret }}
          key: {{ $v.auth.secretKey }}
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  ports:
    - name: caskade-resp
      containerPort: {{ $v.respPort }}
      protocol: TCP
    - name: caskade-admin
      containerPort: {{ $v.adminPort }}
      protocol: TCP
  startupProbe:
    {{- include "caskade.probe" (dict "ctx" . "path" "/readyz" "settings" $v.probes.startup) | nindent 4 }}
  livenessProbe:
    {{- include "caskade.probe" (dict "ctx" . "path" "/healthz" "settings" $v.probes.liveness) | nindent 4 }}
  readinessProbe:
    {{- include "caskade.probe" (dict "ctx" . "path" "/readyz" "settings" $v.probes.readiness) | nindent 4 }}
  {{- with $v.lifecycle }}
  lifecycle:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: caskade-config
      mountPath: /etc/caskade
      readOnly: true
    - name: caskade-data
      mountPath: /data
    {{- if ne $v.plugins.source "none" }}
    - name: caskade-plugins
      mountPath: {{ $v.plugins.mountPath }}
      readOnly: true
    {{- end }}
    {{- if $v.unixSocket.enabled }}
    - name: caskade-socket
      mountPath: {{ $v.unixSocket.dir }}
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The caskade container for a pod's `containers` (empty with sidecar.native). */}}
{{- define "caskade.sidecar" -}}
{{- if not .values.sidecar.native }}
{{- include "caskade.container" . }}
{{- end }}
{{- end }}

{{/* What a pod's `initContainers` needs, in order (may be empty). */}}
{{- define "caskade.initContainers" -}}
{{- $v := .values }}
{{- if and (eq $v.persistence.type "hostPath") $v.persistence.hostPath.volumePermissions }}
# A hostPath directory is created by root and fsGroup does not apply to it: hand it
# to the user caskade runs as.
- name: caskade-volume-permissions
  image: {{ include "caskade.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: ["/bin/sh", "-c", "chown {{ $v.securityContext.runAsUser }}:{{ $v.securityContext.runAsGroup }} /data && chmod 0750 /data"]
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities:
      drop: [ALL]
      add: [CHOWN, FOWNER]
    seccompProfile:
      type: RuntimeDefault
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 32Mi
  volumeMounts:
    - name: caskade-data
      mountPath: /data
{{- end }}
{{- if eq $v.plugins.source "initContainer" }}
- name: caskade-plugins
  image: {{ required "plugins.image.reference is required when plugins.source is initContainer" $v.plugins.image.reference | quote }}
  imagePullPolicy: {{ $v.plugins.image.pullPolicy }}
  command: ["sh", "-c", "cp -R /plugins/. /caskade-plugins/"]
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  volumeMounts:
    - name: caskade-plugins
      mountPath: /caskade-plugins
{{- end }}
{{- if $v.sidecar.native }}
{{ include "caskade.container" . }}
{{- end }}
{{- end }}

{{/* The volumes the caskade containers mount, for a pod's `volumes`. */}}
{{- define "caskade.volumes" -}}
{{- $v := .values }}
- name: caskade-config
  configMap:
    name: {{ include "caskade.configMapName" . }}
- name: caskade-data
  {{- if eq $v.persistence.type "emptyDir" }}
  emptyDir:
    {{- with $v.persistence.emptyDir.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ $v.persistence.emptyDir.sizeLimit }}
  {{- else if eq $v.persistence.type "hostPath" }}
  hostPath:
    path: {{ $v.persistence.hostPath.path }}
    type: {{ $v.persistence.hostPath.type }}
  {{- else }}
  persistentVolumeClaim:
    claimName: {{ include "caskade.claimName" . }}
  {{- end }}
{{- if eq $v.plugins.source "configMap" }}
- name: caskade-plugins
  configMap:
    name: {{ required "plugins.configMap.name is required when plugins.source is configMap" $v.plugins.configMap.name }}
{{- else if eq $v.plugins.source "image" }}
- name: caskade-plugins
  image:
    reference: {{ required "plugins.image.reference is required when plugins.source is image" $v.plugins.image.reference | quote }}
    pullPolicy: {{ $v.plugins.image.pullPolicy }}
{{- else if eq $v.plugins.source "initContainer" }}
- name: caskade-plugins
  emptyDir: {}
{{- end }}
{{- if $v.unixSocket.enabled }}
- name: caskade-socket
  emptyDir: {}
{{- end }}
{{- with $v.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Pod annotations: a checksum of caskade's configuration (a changed configuration rolls
the pods) and, unless the admin port is loopback-only, Prometheus scrape annotations.
*/}}
{{- define "caskade.podAnnotations" -}}
checksum/caskade-config: {{ include "caskade.configYaml" . | sha256sum }}
{{- if and .values.metrics.podAnnotations (not (include "caskade.adminLoopback" .)) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .values.adminPort | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* The ConfigMap holding caskade.yaml. */}}
{{- define "caskade.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "caskade.configMapName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "caskade.labels" . | nindent 4 }}
data:
  caskade.yaml: |
    {{- include "caskade.configYaml" . | nindent 4 }}
{{- end }}

{{/*
The generated auth Secret (auth.generate): a random password, kept across upgrades
(read back from the cluster when the Secret exists).
*/}}
{{- define "caskade.authSecret" -}}
{{- if and .values.auth.generate (not .values.auth.existingSecret) }}
{{- $name := include "caskade.authSecretName" . }}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace $name }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "caskade.labels" . | nindent 4 }}
  annotations:
    # Kept on uninstall: clients configured with the password keep working after a
    # reinstall.
    helm.sh/resource-policy: keep
type: Opaque
data:
  {{- if and $existing (index ($existing.data | default dict) .values.auth.secretKey) }}
  {{ .values.auth.secretKey }}: {{ index $existing.data .values.auth.secretKey }}
  {{- else }}
  {{ .values.auth.secretKey }}: {{ randAlphaNum 32 | b64enc }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The data claim the chart creates (persistence.type persistentVolumeClaim). */}}
{{- define "caskade.claim" -}}
{{- $p := .values.persistence }}
{{- if and (eq $p.type "persistentVolumeClaim") (not $p.persistentVolumeClaim.existingClaim) }}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "caskade.claimName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "caskade.labels" . | nindent 4 }}
spec:
  accessModes:
    {{- toYaml $p.persistentVolumeClaim.accessModes | nindent 4 }}
  {{- with $p.persistentVolumeClaim.storageClassName }}
  storageClassName: {{ . }}
  {{- end }}
  resources:
    requests:
      storage: {{ $p.persistentVolumeClaim.size }}
{{- end }}
{{- end }}
