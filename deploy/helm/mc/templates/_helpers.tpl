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

{{/*
The environment of every MC container: the ConfigMap, the Secret's keys, the signing key file.
With pgbouncer.enabled, the database URL is PgBouncer's (its config Secret, key database-url)
and MC_DB_PGBOUNCER is set; "mc.envDirect" (the migrations Job) keeps the database's own URL.
*/}}
{{- define "mc.env" -}}
{{- include "mc.envFor" (dict "root" . "direct" false) -}}
{{- end -}}

{{- define "mc.envDirect" -}}
{{- include "mc.envFor" (dict "root" . "direct" true) -}}
{{- end -}}

{{- define "mc.envFor" -}}
{{- $root := .root -}}
{{- $pooled := and $root.Values.pgbouncer.enabled (not .direct) -}}
envFrom:
  - configMapRef:
      name: {{ include "mc.fullname" $root }}-config
env:
  {{- $keys := $root.Values.secrets.keys }}
  {{- range $name := list "secretKey" "databaseUrl" "brokerUrl" "resultBackend" "cacheUrl" "canaryWebhookSecret" }}
  - name: {{ index $keys $name }}
    valueFrom:
      secretKeyRef:
        {{- if and $pooled (eq $name "databaseUrl") }}
        name: {{ include "mc.pgbouncer.secretName" $root }}
        key: database-url
        {{- else }}
        name: {{ include "mc.secretName" $root }}
        key: {{ index $keys $name }}
        {{- end }}
        optional: {{ has $name (list "cacheUrl" "canaryWebhookSecret" "resultBackend") }}
  {{- end }}
  {{- if $pooled }}
  - name: MC_DB_PGBOUNCER
    value: "true"
  {{- end }}
  - name: MC_SIGNING_KEY
    value: /var/run/mc/signing/{{ $keys.signingKey }}
{{- end -}}

{{/* PgBouncer's config Secret: pgbouncer.ini, users.txt, database-url, stats-url. */}}
{{- define "mc.pgbouncer.secretName" -}}
{{- if .Values.pgbouncer.configSecretName -}}
{{- .Values.pgbouncer.configSecretName -}}
{{- else if .Values.secrets.existingSecret -}}
{{- fail "pgbouncer.configSecretName: with secrets.existingSecret, name a Secret holding pgbouncer.ini, users.txt and database-url (and stats-url for the metrics exporter; the chart cannot read the database URL from a Secret it did not make)" -}}
{{- else -}}
{{- printf "%s-pgbouncer" (include "mc.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The parts of secrets.values.databaseUrl PgBouncer needs: host, port, dbname, user, password.
The URL's sslmode, if any, becomes PgBouncer's server_tls_sslmode (MC to PgBouncer is in-cluster).
A password that needs percent-encoding in a URL cannot be decoded here: use configSecretName.
*/}}
{{- define "mc.pgbouncer.database" -}}
{{- $url := urlParse .Values.secrets.values.databaseUrl -}}
{{- if contains "%" $url.userinfo -}}
{{- fail "pgbouncer: secrets.values.databaseUrl has a percent-encoded user or password; give pgbouncer.configSecretName instead" -}}
{{- end -}}
{{- $user := splitList ":" $url.userinfo -}}
{{- $port := regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host) | default "5432" -}}
{{- $sslmode := regexFind "sslmode=[a-z-]+" $url.query | trimPrefix "sslmode=" | default .Values.pgbouncer.serverTlsSslmode -}}
{{- dict "host" $url.hostname "port" $port "dbname" (trimPrefix "/" $url.path) "user" (first $user) "password" (rest $user | join ":") "sslmode" $sslmode | toJson -}}
{{- end -}}

{{/* pgbouncer.ini: transaction pooling, pool sizes from values, no files written (logs to stderr). */}}
{{- define "mc.pgbouncer.ini" -}}
{{- $db := include "mc.pgbouncer.database" . | fromJson -}}
{{- $p := .Values.pgbouncer -}}
[databases]
{{ $db.dbname }} = host={{ $db.host }} port={{ $db.port }} dbname={{ $db.dbname }}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = {{ $p.port }}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = /etc/pgbouncer/users.txt
stats_users = {{ $db.user }}
; MC keeps no session state behind PgBouncer (MC_DB_PGBOUNCER): transaction pooling.
pool_mode = transaction
max_client_conn = {{ $p.maxClientConn }}
default_pool_size = {{ $p.defaultPoolSize }}
min_pool_size = {{ $p.minPoolSize }}
reserve_pool_size = {{ $p.reservePoolSize }}
max_db_connections = {{ $p.maxDbConnections }}
max_prepared_statements = 0
server_tls_sslmode = {{ $db.sslmode }}
ignore_startup_parameters = extra_float_digits
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

{{/*
The KEDA trigger in use: "prometheus" (the exact backlog, mc_queue_backlog summed over the
queue's priority lists) or "redis" (one trigger per list: KEDA takes the largest).
*/}}
{{- define "mc.keda.trigger" -}}
{{- $trigger := .Values.keda.trigger -}}
{{- if eq $trigger "auto" -}}
{{- ternary "prometheus" "redis" (ne .Values.keda.prometheus.serverAddress "") -}}
{{- else if and (eq $trigger "prometheus") (not .Values.keda.prometheus.serverAddress) -}}
{{- fail "keda.prometheus.serverAddress: the prometheus trigger needs the address of a Prometheus that scrapes MC" -}}
{{- else -}}
{{- $trigger -}}
{{- end -}}
{{- end -}}
