{{/* Names, labels and the derived store settings shared by every template. */}}

{{/* The store id: the release name unless given; a DNS label because it becomes a label value and host part. */}}
{{- define "store.id" -}}
{{- $id := .Values.storeId | default .Release.Name -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" $id) -}}
{{- fail (printf "storeId %q must be a DNS label (lower-case letters, digits, '-'; at most 63 characters)" $id) -}}
{{- end -}}
{{- $id -}}
{{- end -}}

{{/* Name prefix of every object; the release name, which the control plane sets to the store id. */}}
{{- define "store.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "store.host" -}}
{{- .Values.host | default (printf "%s.%s" (include "store.id" .) .Values.baseDomain) -}}
{{- end -}}

{{- define "store.siteUrl" -}}
{{- if .Values.siteUrl -}}
{{- .Values.siteUrl | trimSuffix "/" -}}
{{- else -}}
{{- printf "%s://%s" (ternary "https" "http" (eq (include "store.tls" .) "true")) (include "store.host" .) -}}
{{- end -}}
{{- end -}}

{{/*
Routing. The values of before `routing` (a top-level `ingress` block: enabled, className, annotations,
tls.enabled, tls.secretName) still work, so a platform's storeValues written for them keep their meaning.
*/}}
{{- define "store.legacyIngress" -}}
{{- toYaml (.Values.ingress | default dict) -}}
{{- end -}}

{{/* gateway, ingress or none; a legacy `ingress.enabled: false` means none. */}}
{{- define "store.routingMode" -}}
{{- $legacy := include "store.legacyIngress" . | fromYaml -}}
{{- $mode := .Values.routing.mode -}}
{{- if not (has $mode (list "gateway" "ingress" "none")) -}}
{{- fail (printf "routing.mode must be gateway, ingress or none, not %q" $mode) -}}
{{- end -}}
{{- if and (hasKey $legacy "enabled") (not $legacy.enabled) -}}
none
{{- else -}}
{{- $mode -}}
{{- end -}}
{{- end -}}

{{/* "true" when visitors use HTTPS: routing.tls.enabled, or the legacy ingress.tls.enabled. */}}
{{- define "store.tls" -}}
{{- $legacy := include "store.legacyIngress" . | fromYaml -}}
{{- if or .Values.routing.tls.enabled (dig "tls" "enabled" false $legacy) -}}
true
{{- end -}}
{{- end -}}

{{/* The Ingress settings: routing.ingress, where empty the legacy ingress block's. */}}
{{- define "store.ingressSettings" -}}
{{- $legacy := include "store.legacyIngress" . | fromYaml -}}
{{- $ingress := .Values.routing.ingress -}}
className: {{ $ingress.className | default (get $legacy "className") | default "" | quote }}
annotations:
  {{- toYaml ($ingress.annotations | default (get $legacy "annotations") | default dict) | nindent 2 }}
tlsSecretName: {{ $ingress.tlsSecretName | default (dig "tls" "secretName" "" $legacy) | default (printf "%s-tls" (include "store.fullname" .)) | quote }}
{{- end -}}

{{- define "store.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "store.fullname" .) -}}
{{- end -}}

{{- define "store.credentialsSecret" -}}
{{- printf "%s-credentials" .Release.Name -}}
{{- end -}}

{{- define "store.mariadbHost" -}}
{{- printf "%s-mariadb" (include "store.fullname" .) -}}
{{- end -}}

{{/* Labels every object carries: the standard app.kubernetes.io set plus the store id and engine. */}}
{{- define "store.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: storefleet
storefleet.dev/store-id: {{ include "store.id" . }}
storefleet.dev/engine: {{ .Values.engine }}
{{- end -}}

{{/* Labels of one component (wordpress, database, setup); pass (dict "ctx" $ "component" "wordpress"). */}}
{{- define "store.componentLabels" -}}
{{ include "store.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Labels for fields that can never change after creation (StatefulSet volumeClaimTemplates):
the store's labels without the chart and app versions.
*/}}
{{- define "store.stableLabels" -}}
{{ include "store.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: storefleet
storefleet.dev/store-id: {{ include "store.id" .ctx }}
storefleet.dev/engine: {{ .ctx.Values.engine }}
{{- end -}}

{{/* Selector labels: stable across chart versions, so never the version labels. */}}
{{- define "store.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "store.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/*
WordPress's database and salt settings, read by the image's wp-config.php at run time
(getenv), so the WordPress pod and the setup Job must both have them.
*/}}
{{- define "store.wordpressEnv" -}}
{{- $secret := include "store.credentialsSecret" . -}}
- name: WORDPRESS_DB_HOST
  value: {{ include "store.mariadbHost" . | quote }}
- name: WORDPRESS_DB_NAME
  value: {{ .Values.mariadb.database | quote }}
- name: WORDPRESS_DB_USER
  value: {{ .Values.mariadb.user | quote }}
- name: WORDPRESS_DB_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ $secret }}, key: mariadb-password }
{{- if .Values.cron.enabled }}
# Scheduled events run from the wp-cron CronJob, not on page loads.
- name: WORDPRESS_CONFIG_EXTRA
  value: "define('DISABLE_WP_CRON', true);"
{{- end }}
{{- range $salt := list "auth-key" "secure-auth-key" "logged-in-key" "nonce-key" "auth-salt" "secure-auth-salt" "logged-in-salt" "nonce-salt" }}
- name: WORDPRESS_{{ $salt | upper | replace "-" "_" }}
  valueFrom:
    secretKeyRef: { name: {{ $secret }}, key: wordpress-{{ $salt }} }
{{- end }}
{{- end -}}

{{/*
Pod affinity of pods that mount the WordPress volume next to WordPress: a ReadWriteOnce volume
can be mounted by several pods, but only on one node.
*/}}
{{- define "store.besideWordpress" -}}
{{- if eq .Values.wordpress.persistence.accessMode "ReadWriteOnce" -}}
affinity:
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "store.selectorLabels" (dict "ctx" . "component" "wordpress") | nindent 12 }}
{{- end -}}
{{- end -}}

{{/* WP-CLI needs: its config from the scripts ConfigMap; cache and home in /tmp (uid 33 has no home in the Alpine image). */}}
{{- define "store.wpCliEnv" -}}
- name: WP_CLI_CONFIG_PATH
  value: /opt/storefleet/wp-cli.yml
- name: WP_CLI_CACHE_DIR
  value: /tmp/wp-cli-cache
- name: HOME
  value: /tmp
{{- end -}}

{{/* "true" when the store has an SMTP relay (mail.relay.host); checks the settings that go with it. */}}
{{- define "store.mailEnabled" -}}
{{- $mail := .Values.mail -}}
{{- if $mail.relay.host -}}
{{- if not $mail.relay.cidr -}}
{{- fail "mail.relay.cidr is required with mail.relay.host: the egress NetworkPolicy needs the relay's addresses" -}}
{{- end -}}
{{- if not $mail.from.address -}}
{{- fail "mail.from.address is required with mail.relay.host" -}}
{{- end -}}
{{- if not (has $mail.relay.tls (list "none" "starttls" "tls")) -}}
{{- fail (printf "mail.relay.tls %q must be none, starttls or tls" $mail.relay.tls) -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/*
The relay settings the must-use plugin (files/mu-plugins/storefleet-mail.php) reads from the
environment; the login only through secretKeyRef. Empty without a relay.
*/}}
{{- define "store.mailEnv" -}}
{{- if include "store.mailEnabled" . -}}
{{- $relay := .Values.mail.relay -}}
- name: STOREFLEET_SMTP_HOST
  value: {{ $relay.host | toString | toJson }}
- name: STOREFLEET_SMTP_PORT
  value: {{ $relay.port | toString | toJson }}
- name: STOREFLEET_SMTP_TLS
  value: {{ $relay.tls | toJson }}
- name: STOREFLEET_MAIL_FROM
  value: {{ .Values.mail.from.address | toJson }}
- name: STOREFLEET_MAIL_FROM_NAME
  value: {{ .Values.mail.from.name | toString | toJson }}
{{- with $relay.credentialsSecret }}
- name: STOREFLEET_SMTP_USERNAME
  valueFrom:
    secretKeyRef: { name: {{ . }}, key: username }
- name: STOREFLEET_SMTP_PASSWORD
  valueFrom:
    secretKeyRef: { name: {{ . }}, key: password }
{{- end }}
{{- end -}}
{{- end -}}

{{/* Fails rendering for an engine this chart does not implement. */}}
{{- define "store.checkEngine" -}}
{{- if ne .Values.engine "woocommerce" -}}
{{- fail (printf "this chart is the woocommerce engine; engine %q needs its own chart (docs/engines.md)" .Values.engine) -}}
{{- end -}}
{{- end -}}

{{/*
A store's own domain's Certificate (and, with `-tls`, its Secret): a fixed-length name from the
domain's hash, since a domain may be 253 bytes long. The control plane computes the same
(crates/storefleet/src/domains/controller.rs, `certificate_name`) to read the certificate's state.
*/}}
{{- define "store.domainCertName" -}}
{{- printf "domain-%s" (sha256sum . | trunc 10) -}}
{{- end -}}
