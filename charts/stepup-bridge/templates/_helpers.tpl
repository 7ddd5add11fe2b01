{{/*
Names, labels and the paths inside the container. Paths are fixed here once:
the config rendered below points at exactly the files the Deployment mounts.
*/}}

{{- define "stepup-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stepup-bridge.fullname" -}}
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

{{- define "stepup-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "stepup-bridge.labels" -}}
helm.sh/chart: {{ include "stepup-bridge.chart" . }}
app.kubernetes.io/name: {{ include "stepup-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stepup-bridge
{{- end -}}

{{/* Selects the serving pods only (not the provisioning Job's pods). */}}
{{- define "stepup-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stepup-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "stepup-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stepup-bridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "stepup-bridge.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Container paths. */}}
{{- define "stepup-bridge.configDir" -}}/etc/stepup-bridge{{- end -}}
{{- define "stepup-bridge.secretsDir" -}}/var/run/secrets/stepup-bridge{{- end -}}
{{- define "stepup-bridge.dataDir" -}}/var/lib/stepup-bridge{{- end -}}
{{- define "stepup-bridge.containerPort" -}}8080{{- end -}}

{{/* True when the release runs, or may scale to, more than one pod. */}}
{{- define "stepup-bridge.multiReplica" -}}
{{- if or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled -}}true{{- end -}}
{{- end -}}

{{/*
Checks the schema cannot express. Included by every template that renders a
workload, so `helm template` and `helm install` stop with the message.
*/}}
{{- define "stepup-bridge.validate" -}}
{{- if and (eq .Values.store.type "sqlite") (include "stepup-bridge.multiReplica" .) -}}
{{- fail (printf "store.type sqlite supports exactly one replica (replicaCount=%d, autoscaling.enabled=%t): SQLite keeps challenges, rate limits and locks in one pod's file, so replicas would not share them. Set store.type=postgres and store.postgres.dsn.existingSecret for more than one replica." (int .Values.replicaCount) .Values.autoscaling.enabled) -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if and .Values.keycloak.caBundle.configMap .Values.keycloak.caBundle.secret -}}
{{- fail "keycloak.caBundle: set configMap or secret, not both" -}}
{{- end -}}
{{- end -}}

{{/*
The sidecar's config.yaml: .Values.config with the keys the chart owns laid
over it. Every secret is a *_file key pointing into the projected secrets
volume; no secret value is ever rendered.
*/}}
{{- define "stepup-bridge.config" -}}
{{- $v := .Values -}}
{{- $secrets := include "stepup-bridge.secretsDir" . -}}
{{- $kc := dict "url" $v.keycloak.url "realm" $v.keycloak.realm "client_id" $v.keycloak.clientID "admin_client_id" $v.keycloak.adminClientID "admin_client_secret_file" (printf "%s/keycloak-admin-client-secret" $secrets) -}}
{{- if $v.keycloak.clientSecret.existingSecret -}}
{{- $_ := set $kc "client_secret_file" (printf "%s/keycloak-client-secret" $secrets) -}}
{{- end -}}
{{- if or $v.keycloak.caBundle.configMap $v.keycloak.caBundle.secret -}}
{{- $_ := set $kc "ca_file" (printf "%s/keycloak-ca.crt" $secrets) -}}
{{- end -}}
{{- $store := dict "type" $v.store.type -}}
{{- if eq $v.store.type "postgres" -}}
{{- $_ := set $store "postgres" (dict "dsn_file" (printf "%s/postgres-dsn" $secrets)) -}}
{{- else -}}
{{- $_ := set $store "sqlite" (dict "path" (printf "%s/stepup-bridge.db" (include "stepup-bridge.dataDir" .))) -}}
{{- end -}}
{{- $managed := dict
  "listen" (dict "addr" (printf ":%d" (int (include "stepup-bridge.containerPort" .))))
  "keycloak" $kc
  "store" $store
  "secrets" (dict "encryption_keys_file" (printf "%s/encryption-keys" $secrets) "pepper_file" (printf "%s/pepper" $secrets))
-}}
{{- range $i, $x := $v.extraSecretFiles -}}
{{- $node := $managed -}}
{{- $parts := splitList "." $x.configKey -}}
{{- range $p := initial $parts -}}
{{- if not (hasKey $node $p) -}}
{{- $_ := set $node $p (dict) -}}
{{- end -}}
{{- $node = index $node $p -}}
{{- end -}}
{{- $_ := set $node (last $parts) (printf "%s/extra-%d" $secrets $i) -}}
{{- end -}}
{{- if $v.policies -}}
{{- $_ := set $managed "policies" (dict "file" (printf "%s/policies.yaml" (include "stepup-bridge.configDir" .))) -}}
{{- end -}}
{{- $cfg := mergeOverwrite (deepCopy (default (dict) $v.config)) $managed -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The projected volume holding every referenced secret as one file each. */}}
{{- define "stepup-bridge.secretsVolume" -}}
- name: secrets
  projected:
    # 0440: readable by the pod's fsGroup, never world-readable.
    defaultMode: 288
    sources:
      - secret:
          name: {{ .Values.keycloak.adminClientSecret.existingSecret }}
          items:
            - key: {{ .Values.keycloak.adminClientSecret.key }}
              path: keycloak-admin-client-secret
      {{- if .Values.keycloak.clientSecret.existingSecret }}
      - secret:
          name: {{ .Values.keycloak.clientSecret.existingSecret }}
          items:
            - key: {{ .Values.keycloak.clientSecret.key }}
              path: keycloak-client-secret
      {{- end }}
      - secret:
          name: {{ .Values.secrets.encryptionKeys.existingSecret }}
          items:
            - key: {{ .Values.secrets.encryptionKeys.key }}
              path: encryption-keys
      - secret:
          name: {{ .Values.secrets.pepper.existingSecret }}
          items:
            - key: {{ .Values.secrets.pepper.key }}
              path: pepper
      {{- if eq .Values.store.type "postgres" }}
      - secret:
          name: {{ .Values.store.postgres.dsn.existingSecret }}
          items:
            - key: {{ .Values.store.postgres.dsn.key }}
              path: postgres-dsn
      {{- end }}
      {{- range $i, $x := .Values.extraSecretFiles }}
      - secret:
          name: {{ $x.existingSecret }}
          items:
            - key: {{ $x.key }}
              path: extra-{{ $i }}
      {{- end }}
      {{- if .Values.keycloak.caBundle.configMap }}
      - configMap:
          name: {{ .Values.keycloak.caBundle.configMap }}
          items:
            - key: {{ .Values.keycloak.caBundle.key }}
              path: keycloak-ca.crt
      {{- else if .Values.keycloak.caBundle.secret }}
      - secret:
          name: {{ .Values.keycloak.caBundle.secret }}
          items:
            - key: {{ .Values.keycloak.caBundle.key }}
              path: keycloak-ca.crt
      {{- end }}
{{- end -}}

{{/* Pod-level hardening shared by the Deployment and the provisioning Job. */}}
{{- define "stepup-bridge.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
fsGroup: {{ .Values.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level hardening shared by the Deployment and the provisioning Job. */}}
{{- define "stepup-bridge.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}
