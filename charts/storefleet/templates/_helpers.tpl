{{/* Names and labels shared by every template. */}}

{{/* `storefleet` for a release named storefleet, else `<release>-storefleet`; also names the cluster-scoped RBAC. */}}
{{- define "storefleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "storefleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "storefleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: storefleet
{{- end -}}

{{/* Stable across chart versions: Deployment selector and NetworkPolicy target. */}}
{{- define "storefleet.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end -}}

{{/*
Two identities, one per container (docs/security.md, "Who may do what in the cluster"): the API,
which parses requests from the network and may grant no rights, and the controller, which runs helm
and binds roles in store namespaces. The API's is the Pod's ServiceAccount.
*/}}
{{- define "storefleet.apiServiceAccountName" -}}
{{- printf "%s-api" (include "storefleet.fullname" .) -}}
{{- end -}}

{{- define "storefleet.controllerServiceAccountName" -}}
{{- printf "%s-controller" (include "storefleet.fullname" .) -}}
{{- end -}}

{{/* The controller's token, mounted into the controller container only (secret-controller-token.yaml). */}}
{{- define "storefleet.controllerTokenSecret" -}}
{{- printf "%s-controller-token" (include "storefleet.fullname" .) -}}
{{- end -}}

{{/* The ClusterRole the controller binds to itself, with a RoleBinding, inside each store namespace only. */}}
{{- define "storefleet.storeRole" -}}
{{- printf "%s-store" (include "storefleet.fullname" .) -}}
{{- end -}}

{{/* The ClusterRole the controller binds to the API, likewise: reading a store's credentials. */}}
{{- define "storefleet.storeApiRole" -}}
{{- printf "%s-store-api" (include "storefleet.fullname" .) -}}
{{- end -}}

{{- define "storefleet.adminTokenSecret" -}}
{{- .Values.adminToken.existingSecret | default (printf "%s-admin-token" (include "storefleet.fullname" .)) -}}
{{- end -}}

{{- define "storefleet.claimName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "storefleet.fullname" .)) -}}
{{- end -}}

{{- define "storefleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Values the chart cannot work with fail the render with a message, not a broken object. */}}
{{/* The controllers' leader Lease, as `storefleet serve` names it by default. */}}
{{- define "storefleet.leaseName" -}}
{{- printf "storefleet-%s" (.Values.instance | lower | replace "_" "-") -}}
{{- end -}}

{{- define "storefleet.validate" -}}
{{- if not (has .Values.environment (list "local" "prod")) -}}
{{- fail (printf "environment must be local or prod, not %q" .Values.environment) -}}
{{- end -}}
{{- $db := .Values.database -}}
{{- if not (has $db.type (list "sqlite" "postgres")) -}}
{{- fail (printf "database.type must be sqlite or postgres, not %q" $db.type) -}}
{{- end -}}
{{- if and (eq $db.type "postgres") (not $db.postgres.existingSecret) -}}
{{- fail "database.postgres.existingSecret is required with database.type=postgres: a Secret in this namespace whose key database.postgres.key (default url) holds the URL, postgres://user:password@host:5432/db?sslmode=require (docs/production.md)" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (ne $db.type "postgres") -}}
{{- fail (printf "replicaCount %d needs database.type=postgres (and database.postgres.existingSecret): with the default database.type=sqlite the audit log, users and sessions are one SQLite file on a ReadWriteOnce volume, with one writer (docs/production.md, \"Replicas and leader election\")" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (eq .Values.backups.target "filesystem") .Values.backups.filesystem.existingClaim -}}
{{- $claim := lookup "v1" "PersistentVolumeClaim" .Release.Namespace .Values.backups.filesystem.existingClaim | default dict -}}
{{- $modes := dig "spec" "accessModes" list $claim -}}
{{- if and $claim (not (has "ReadWriteMany" $modes)) -}}
{{- fail (printf "replicaCount %d with backups.target=filesystem needs a ReadWriteMany claim: every replica's controller mounts backups.filesystem.existingClaim %q, which is %s, and replicas on different nodes cannot all mount it (set replicaCount: 1, use a ReadWriteMany claim, or backups.target=s3)" (int .Values.replicaCount) .Values.backups.filesystem.existingClaim (join "," $modes)) -}}
{{- end -}}
{{- end -}}
{{- $delay := include "storefleet.seconds" .Values.shutdownDelay -}}
{{- if and $delay (lt (int .Values.terminationGracePeriodSeconds) (add (int $delay) 10)) -}}
{{- fail (printf "terminationGracePeriodSeconds %d is too short for shutdownDelay %s: give it at least %d (the delay, 5 s for requests under way, 5 s to spare), or Kubernetes kills pods mid-request" (int .Values.terminationGracePeriodSeconds) .Values.shutdownDelay (add (int $delay) 10)) -}}
{{- end -}}
{{- if not (has .Values.urlScheme (list "http" "https")) -}}
{{- fail (printf "urlScheme must be http or https, not %q" .Values.urlScheme) -}}
{{- end -}}
{{- if and (ne (include "storefleet.routingMode" .) "none") (not (include "storefleet.host" .)) -}}
{{- fail "routing.host is required unless routing.mode is none" -}}
{{- end -}}
{{- if not (or (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy") .Values.rbac.allowWithoutAdmissionPolicy) -}}
{{- fail (printf `this cluster (Kubernetes %s) has no ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.30+). Without it RBAC cannot keep the controller's "create rolebindings" inside store namespaces: whoever takes over the controller container can bind the store role in kube-system, read the Secrets there and become cluster-admin (docs/security.md, "Who may do what in the cluster"). Install on Kubernetes 1.30 or later, or accept that risk with --set rbac.allowWithoutAdmissionPolicy=true. (helm template without a cluster: add --api-versions admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy.)` .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}

{{/*
Routing. The values of before `routing` (a top-level `ingress` block: enabled, className, host,
annotations, tls.enabled, tls.secretName) still work: where given, they fill in for routing's.
*/}}
{{- define "storefleet.legacyIngress" -}}
{{- toYaml (.Values.ingress | default dict) -}}
{{- end -}}

{{/* gateway, ingress or none; a legacy `ingress.enabled: false` means none. */}}
{{- define "storefleet.routingMode" -}}
{{- $legacy := include "storefleet.legacyIngress" . | fromYaml -}}
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

{{/* The dashboard and API host. */}}
{{- define "storefleet.host" -}}
{{- $legacy := include "storefleet.legacyIngress" . | fromYaml -}}
{{- get $legacy "host" | default .Values.routing.host -}}
{{- end -}}

{{/* "true" when the dashboard is served over HTTPS. */}}
{{- define "storefleet.tls" -}}
{{- $legacy := include "storefleet.legacyIngress" . | fromYaml -}}
{{- if or .Values.routing.tls.enabled (dig "tls" "enabled" false $legacy) -}}
true
{{- end -}}
{{- end -}}

{{- define "storefleet.tlsSecretName" -}}
{{- $legacy := include "storefleet.legacyIngress" . | fromYaml -}}
{{- .Values.routing.tls.secretName | default (dig "tls" "secretName" "" $legacy) | default (printf "%s-tls" (include "storefleet.fullname" .)) -}}
{{- end -}}

{{/* The URL people open: what cookie-authenticated writes must come from. */}}
{{- define "storefleet.publicUrl" -}}
{{- printf "%s://%s" (ternary "https" "http" (eq (include "storefleet.tls" .) "true")) (include "storefleet.host" .) -}}
{{- end -}}

{{- define "storefleet.gatewayName" -}}
{{- .Values.routing.gateway.name | default (include "storefleet.fullname" .) -}}
{{- end -}}

{{- define "storefleet.gatewayNamespace" -}}
{{- .Values.routing.gateway.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* The Ingress settings: routing.ingress, where empty the legacy ingress block's. */}}
{{- define "storefleet.ingressSettings" -}}
{{- $legacy := include "storefleet.legacyIngress" . | fromYaml -}}
{{- $ingress := .Values.routing.ingress -}}
className: {{ $ingress.className | default (get $legacy "className") | default "" | quote }}
annotations:
  {{- toYaml ($ingress.annotations | default (get $legacy "annotations") | default dict) | nindent 2 }}
{{- end -}}

{{/*
The paths people and API clients use, and their match (Exact or Prefix): the HTTPRoute and the Ingress
route these only, never /metrics, /readyz or /healthz (the probes and Prometheus reach the pod
directly). `/` alone is Exact, so no other path slips through.
*/}}
{{- define "storefleet.publicPaths" -}}
{{- toYaml (dict "/" "Exact" "/assets" "Prefix" "/stores" "Prefix" "/events" "Exact" "/me" "Exact" "/audit" "Exact" "/users" "Prefix" "/session" "Exact" "/docs" "Prefix" "/openapi.json" "Exact") -}}
{{- end -}}

{{/* The labels the controller gives the namespaces of this instance's stores. */}}
{{- define "storefleet.storeNamespaceLabels" -}}
app.kubernetes.io/managed-by: storefleet
storefleet.dev/instance: {{ .Values.instance | quote }}
{{- end -}}

{{/* Whole seconds (rounded up) of a duration such as `5s`, `1m30s`, `500ms`; empty when unparsed. */}}
{{- define "storefleet.seconds" -}}
{{- $d := toString . | trim -}}
{{- if regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$" $d -}}
{{- if $d -}}
{{- $ms := 0 -}}
{{- range regexFindAll "[0-9]+(h|ms|m|s)" $d -1 -}}
{{- $n := int (regexFind "^[0-9]+" .) -}}
{{- $unit := regexReplaceAll "^[0-9]+" . "" -}}
{{- $ms = add $ms (mul $n (get (dict "h" 3600000 "m" 60000 "s" 1000 "ms" 1) $unit)) -}}
{{- end -}}
{{- div (add $ms 999) 1000 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when the database is SQLite: a file on the `data` volume, which only then exists. */}}
{{- define "storefleet.sqlite" -}}
{{- if eq .Values.database.type "sqlite" -}}
true
{{- end -}}
{{- end -}}

{{/* "true" with more than one pod (PostgreSQL only): rolling updates, a PodDisruptionBudget, spreading. */}}
{{- define "storefleet.replicated" -}}
{{- if gt (int .Values.replicaCount) 1 -}}
true
{{- end -}}
{{- end -}}

{{/*
The pods' topologySpreadConstraints: the values' list (a constraint without labelSelector gets the
pods' selector labels), or by default, with more than one replica, one per node, ScheduleAnyway.
*/}}
{{- define "storefleet.topologySpreadConstraints" -}}
{{- $selector := dict "matchLabels" (include "storefleet.selectorLabels" . | fromYaml) -}}
{{- $constraints := list -}}
{{- range .Values.topologySpreadConstraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" $selector -}}
{{- end -}}
{{- $constraints = append $constraints $c -}}
{{- end -}}
{{- if and (not $constraints) (include "storefleet.replicated" .) -}}
{{- $constraints = list (dict "maxSkew" 1 "topologyKey" "kubernetes.io/hostname" "whenUnsatisfiable" "ScheduleAnyway" "labelSelector" $selector) -}}
{{- end -}}
{{- with $constraints -}}
{{- toYaml . -}}
{{- end -}}
{{- end -}}

{{/* The database URL, for both containers: SQLite's file on the volume, or PostgreSQL's from its Secret. */}}
{{- define "storefleet.databaseEnv" -}}
{{- if include "storefleet.sqlite" . -}}
- { name: STOREFLEET_DATABASE_URL, value: "sqlite:///data/storefleet.db" }
{{- else -}}
- name: STOREFLEET_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.postgres.existingSecret }}
      key: {{ .Values.database.postgres.key | default "url" }}
{{- end -}}
{{- end -}}

{{/* Settings both containers read the same way (one database: the SQLite file on the shared volume, or PostgreSQL). */}}
{{- define "storefleet.sharedEnv" -}}
- { name: STOREFLEET_BASE_DOMAIN, value: {{ .Values.baseDomain | quote }} }
- { name: STOREFLEET_URL_SCHEME, value: {{ .Values.urlScheme | quote }} }
- { name: STOREFLEET_ENVIRONMENT, value: {{ .Values.environment | quote }} }
# Where the image puts the store chart (Dockerfile).
- { name: STOREFLEET_CHART, value: /opt/storefleet/charts/store }
- { name: STOREFLEET_MAX_STORES, value: {{ .Values.maxStores | quote }} }
{{- /* The warm pool: the API claims from it, the controller fills it (docs/pool.md). */}}
{{- with .Values.pool }}
- { name: STOREFLEET_POOL, value: {{ include "storefleet.poolFlag" $ | quote }} }
{{- end }}
# A store's own domains: how many, and where their DNS must point (empty: not checked).
- { name: STOREFLEET_MAX_DOMAINS_PER_STORE, value: {{ .Values.domains.maxPerStore | quote }} }
{{- with .Values.domains.publicAddresses }}
- { name: STOREFLEET_PUBLIC_ADDRESS, value: {{ join "," . | quote }} }
{{- end }}
{{ include "storefleet.databaseEnv" . }}
- { name: STOREFLEET_INSTANCE, value: {{ .Values.instance | quote }} }
- { name: STOREFLEET_LOG_FORMAT, value: {{ .Values.logFormat | quote }} }
# The size plans: the API checks and names them, the controller turns them into store values.
- { name: STOREFLEET_PLANS, value: /etc/storefleet-plans/plans.yaml }
# The root filesystem is read-only.
- { name: HOME, value: /tmp }
- { name: TMPDIR, value: /tmp }
{{- end -}}

{{/* The plan table `storefleet serve --plans` reads (crates/storefleet/src/plans/table.rs). */}}
{{- define "storefleet.plans" -}}
default: {{ .Values.defaultPlan }}
plans:
  {{- toYaml .Values.plans | nindent 2 }}
{{- end -}}

{{/* A container's probes, on its named port. */}}
{{- define "storefleet.probes" -}}
startupProbe:
  httpGet: { path: /healthz, port: {{ . }} }
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: { path: /healthz, port: {{ . }} }
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
# /readyz checks the API server and the database: traffic only when both answer.
readinessProbe:
  httpGet: { path: /readyz, port: {{ . }} }
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/*
The values every store gets after the store chart's environment file: `storeValues`, plus where the
control plane's pods are (`networkPolicy.controlPlane`: this release's namespace and pods), so each
store's NetworkPolicy admits the storefront check to WordPress, and, in gateway mode, which Gateway
and listeners the store's HTTPRoute attaches to (`routing.gateway`). Either in `storeValues`
replaces the platform's whole (a merge could only add to it).
*/}}
{{- define "storefleet.storeValues" -}}
{{- $values := deepCopy .Values.storeValues -}}
{{- $np := get $values "networkPolicy" | default dict -}}
{{- if not (hasKey $np "controlPlane") -}}
{{- $namespace := dict "matchLabels" (dict "kubernetes.io/metadata.name" .Release.Namespace) -}}
{{- $pods := dict "matchLabels" (include "storefleet.selectorLabels" . | fromYaml) -}}
{{- $_ := set $np "controlPlane" (dict "namespaceSelector" $namespace "podSelector" $pods) -}}
{{- $_ := set $values "networkPolicy" $np -}}
{{- end -}}
{{- if eq (include "storefleet.routingMode" .) "gateway" -}}
{{- $routing := get $values "routing" | default dict -}}
{{- if not (hasKey $routing "gateway") -}}
{{- $sections := .Values.routing.gateway.sectionNames -}}
{{- $gateway := dict "name" (include "storefleet.gatewayName" .) "namespace" (include "storefleet.gatewayNamespace" .) "sectionName" $sections.storesHttp "httpsSectionName" $sections.storesHttps "listenerPorts" (dict "http" .Values.routing.gateway.httpPort "https" .Values.routing.gateway.httpsPort) -}}
{{- $_ := set $routing "gateway" $gateway -}}
{{- $_ := set $values "routing" $routing -}}
{{- end -}}
{{- end -}}
{{- toYaml $values -}}
{{- end -}}

{{/*
With backups.target=s3: the S3 endpoint's address ranges, comma-separated, for the controller's
STOREFLEET_BACKUP_S3_CIDR (every store's NetworkPolicy opens them to its backup and restore Jobs).
Empty: the endpoint is an IP address, which the control plane takes as its own range. An endpoint given
by name (or AWS's, with no endpoint) needs them: refused here already, rather than by a controller
that will not start.
*/}}
{{- define "storefleet.backupS3Cidrs" -}}
{{- $s3 := .Values.backups.s3 -}}
{{- if eq .Values.backups.target "s3" -}}
{{- if $s3.cidrs -}}
{{- join "," $s3.cidrs -}}
{{- else -}}
{{- $host := regexReplaceAll ":[0-9]+$" (urlParse ($s3.endpoint | default "")).host "" -}}
{{- if not (or (regexMatch "^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$" $host) (hasPrefix "[" $host)) -}}
{{- $what := ternary (printf "the endpoint %q is given by name" $s3.endpoint) "AWS's endpoint (no backups.s3.endpoint) is given by name" (ne $s3.endpoint "") -}}
{{- fail (printf "backups.s3.cidrs is required with backups.target=s3: %s. Give the addresses it resolves to: every store's NetworkPolicy opens them to its backup and restore Jobs (docs/backups.md); [\"0.0.0.0/0\"] opens every address on the endpoint's port" $what) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where backups go (docs/backups.md): the same for both containers; nothing secret. */}}
{{- define "storefleet.backupEnv" -}}
{{- $b := .Values.backups -}}
{{- if eq $b.target "s3" }}
- { name: STOREFLEET_BACKUP_S3_BUCKET, value: {{ required "backups.s3.bucket is required with backups.target=s3" $b.s3.bucket | quote }} }
- { name: STOREFLEET_BACKUP_S3_REGION, value: {{ $b.s3.region | quote }} }
{{- with $b.s3.endpoint }}
- { name: STOREFLEET_BACKUP_S3_ENDPOINT, value: {{ . | quote }} }
{{- end }}
- { name: STOREFLEET_BACKUP_S3_PATH_STYLE, value: {{ $b.s3.pathStyle | quote }} }
- { name: STOREFLEET_BACKUP_S3_ALLOW_HTTP, value: {{ $b.s3.allowHttp | quote }} }
- { name: STOREFLEET_BACKUP_PREFIX, value: {{ $b.prefix | quote }} }
{{- else if eq $b.target "filesystem" }}
- { name: STOREFLEET_BACKUP_DIR, value: /backups }
- { name: STOREFLEET_BACKUP_PREFIX, value: {{ $b.prefix | quote }} }
{{- else if $b.target }}
{{- fail (printf "backups.target %q: use s3, filesystem or leave it empty" $b.target) }}
{{- end }}
{{- if $b.target }}
- { name: STOREFLEET_BACKUP_SCHEDULE, value: {{ $b.schedule | quote }} }
- { name: STOREFLEET_BACKUP_KEEP_DAILY, value: {{ $b.keepDaily | quote }} }
- { name: STOREFLEET_BACKUP_KEEP_WEEKLY, value: {{ $b.keepWeekly | quote }} }
- { name: STOREFLEET_BACKUP_AUTOMATIC_RETENTION, value: {{ $b.automaticRetention | quote }} }
- { name: STOREFLEET_BACKUP_DELETED_RETENTION, value: {{ $b.deletedRetention | quote }} }
{{- end }}
{{- end -}}

{{/* `pool: {woocommerce/small: 2}` -> `woocommerce/small=2` (comma-separated), as `--pool` reads it. */}}
{{- define "storefleet.poolFlag" -}}
{{- $entries := list -}}
{{- range $kind, $count := .Values.pool -}}
{{- $entries = append $entries (printf "%s=%v" $kind $count) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}
