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

{{- define "storefleet.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "storefleet.fullname" .) -}}
{{- end -}}

{{/* The ClusterRole the control plane binds, with a RoleBinding, inside each store namespace only. */}}
{{- define "storefleet.storeRole" -}}
{{- printf "%s-store" (include "storefleet.fullname" .) -}}
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
{{- define "storefleet.validate" -}}
{{- if not (has .Values.environment (list "local" "prod")) -}}
{{- fail (printf "environment must be local or prod, not %q" .Values.environment) -}}
{{- end -}}
{{- if not (has .Values.urlScheme (list "http" "https")) -}}
{{- fail (printf "urlScheme must be http or https, not %q" .Values.urlScheme) -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) -}}
{{- fail "ingress.host is required when ingress.enabled" -}}
{{- end -}}
{{- end -}}
