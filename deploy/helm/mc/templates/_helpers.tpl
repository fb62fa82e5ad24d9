{{/* Names, labels, the image and the pieces every MC pod shares. */}}

{{- define "mc.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: maestro-conductor
{{- end -}}

{{/* Selector labels of one component: include "mc.selector" (list $ "api") */}}
{{- define "mc.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "mc.image" -}}
{{- if eq .Values.image.tag "latest" -}}
{{- fail "image.tag: pin a version, not \"latest\"" -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository .Values.image.tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{- define "mc.secretName" -}}
{{- default (printf "%s-secrets" (include "mc.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "mc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The environment of every MC container: the ConfigMap, the Secret's keys, the signing key file. */}}
{{- define "mc.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "mc.fullname" . }}-config
env:
  {{- $keys := .Values.secrets.keys }}
  {{- range $name := list "secretKey" "databaseUrl" "brokerUrl" "resultBackend" "cacheUrl" "canaryWebhookSecret" }}
  - name: {{ index $keys $name }}
    valueFrom:
      secretKeyRef:
        name: {{ include "mc.secretName" $ }}
        key: {{ index $keys $name }}
        optional: {{ has $name (list "cacheUrl" "canaryWebhookSecret" "resultBackend") }}
  {{- end }}
  - name: MC_SIGNING_KEY
    value: /var/run/mc/signing/{{ $keys.signingKey }}
{{- end -}}

{{/* Writable directories of a read-only root filesystem, and the signing key. */}}
{{- define "mc.volumeMounts" -}}
volumeMounts:
  - {name: tmp, mountPath: /tmp}
  - {name: metrics, mountPath: /var/lib/mc/prometheus}
  - {name: keyring, mountPath: /var/lib/mc/keys}
  - {name: sbom, mountPath: /var/lib/mc/sbom}
  - {name: artifacts, mountPath: /var/lib/mc/artifacts}
  - {name: signing-key, mountPath: /var/run/mc/signing, readOnly: true}
{{- end -}}

{{- define "mc.volumes" -}}
volumes:
  - {name: tmp, emptyDir: {}}
  - {name: metrics, emptyDir: {}}
  {{- if .Values.keyring.existingClaim }}
  - name: keyring
    persistentVolumeClaim:
      claimName: {{ .Values.keyring.existingClaim }}
  {{- else }}
  - {name: keyring, emptyDir: {}}
  {{- end }}
  - {name: sbom, emptyDir: {}}
  - {name: artifacts, emptyDir: {}}
  - name: signing-key
    secret:
      secretName: {{ include "mc.secretName" . }}
      defaultMode: 0440
      items:
        - {key: {{ .Values.secrets.keys.signingKey }}, path: {{ .Values.secrets.keys.signingKey }}}
{{- end -}}

{{/* Pod-level settings every MC pod shares. */}}
{{- define "mc.podCommon" -}}
serviceAccountName: {{ include "mc.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Annotations that restart pods when the configuration changes. */}}
{{- define "mc.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}

{{/* The sprint plan's canary and budget values as MC's settings (docs/settings.md, "Canary defaults"). */}}
{{- define "mc.canaryEnv" -}}
{{- $metrics := dict -}}
{{- range .Values.canary.metrics -}}
{{- $_ := set $metrics .name .threshold -}}
{{- end -}}
MC_CANARY_ENABLED: {{ .Values.canary.enabled | quote }}
MC_CANARY_WEIGHT: {{ .Values.canary.weight | quote }}
{{- if hasKey $metrics "error_rate" }}
MC_CANARY_MAX_ERROR_RATE_PCT: {{ index $metrics "error_rate" | quote }}
{{- end }}
{{- if hasKey $metrics "p95_latency_ms" }}
MC_CANARY_MAX_P95_MS: {{ index $metrics "p95_latency_ms" | int | quote }}
{{- end }}
MC_CANARY_ERROR_BUDGET_MINUTES: {{ .Values.budgets.errorBudgetMinutes | int | quote }}
MC_BUDGET_MAX_COST_PER_RUN_USD: {{ .Values.budgets.maxCostPerRunUSD | quote }}
{{- end -}}

{{/*
A new ECDSA P-256 signing key as MC reads it: PKCS#8 PEM. Helm's genPrivateKey gives the
SEC1 form ("EC PRIVATE KEY", 121 bytes for P-256), which is wrapped here in the fixed PKCS#8
header of a P-256 key (version 0, id-ecPublicKey, prime256v1, an OCTET STRING of 121 bytes).
*/}}
{{- define "mc.newSigningKey" -}}
{{- $sec1 := regexReplaceAll "-----[A-Z ]+-----" (genPrivateKey "ecdsa") "" | nospace | b64dec -}}
{{- if ne (len $sec1) 121 -}}
{{- fail "genPrivateKey gave an unexpected EC key: give secrets.values.signingKey or secrets.existingSecret" -}}
{{- end -}}
{{- $pkcs8 := printf "%s%s" (b64dec "MIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHk=") $sec1 | b64enc -}}
-----BEGIN PRIVATE KEY-----
{{ regexFindAll ".{1,64}" $pkcs8 -1 | join "\n" }}
-----END PRIVATE KEY-----
{{ end -}}
