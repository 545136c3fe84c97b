{{/* Pod template of the setup Job; its hash names the Job (job-setup.yaml). */}}
{{- define "store.setupPodTemplate" -}}
{{- $setup := .Values.setup -}}
{{- $secret := include "store.credentialsSecret" . -}}
metadata:
  labels:
    {{- include "store.componentLabels" (dict "ctx" . "component" "setup") | nindent 4 }}
  annotations:
    checksum/scripts: {{ include (print $.Template.BasePath "/configmap-scripts.yaml") . | sha256sum }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "store.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    {{- toYaml $setup.podSecurityContext | nindent 4 }}
  {{- with include "store.besideWordpress" . }}
  # On the WordPress pod's node: its volume is mounted here too.
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: setup
      image: {{ include "store.image" $setup.image }}
      imagePullPolicy: {{ $setup.image.pullPolicy }}
      command: [/bin/sh, /opt/storefleet/setup.sh]
      env:
        {{- include "store.wordpressEnv" . | nindent 8 }}
        - name: SITE_URL
          value: {{ include "store.siteUrl" . | toJson }}
        - name: SITE_TITLE
          value: {{ .Values.siteTitle | toJson }}
        - name: ADMIN_USER
          valueFrom:
            secretKeyRef: { name: {{ $secret }}, key: wordpress-admin-user }
        - name: ADMIN_PASSWORD
          valueFrom:
            secretKeyRef: { name: {{ $secret }}, key: wordpress-admin-password }
        - name: ADMIN_EMAIL
          valueFrom:
            secretKeyRef: { name: {{ $secret }}, key: wordpress-admin-email }
        {{- if .Values.identityGeneration }}
        # In the pod template, so a claim (a new generation) renders a new setup Job; absent at 0,
        # so a store never claimed keeps the Job it had before pools existed.
        - name: IDENTITY_GENERATION
          value: {{ .Values.identityGeneration | int | toString | toJson }}
        {{- end }}
        - name: WOOCOMMERCE_VERSION
          value: {{ $setup.woocommerceVersion | toString | toJson }}
        - name: STORE_COUNTRY
          value: {{ .Values.store.country | toJson }}
        - name: STORE_CURRENCY
          value: {{ .Values.store.currency | toJson }}
        - name: PRODUCT_NAME
          value: {{ .Values.store.product.name | toJson }}
        - name: PRODUCT_SKU
          value: {{ .Values.store.product.sku | toJson }}
        - name: PRODUCT_PRICE
          value: {{ .Values.store.product.price | toString | toJson }}
        - name: PRODUCT_STOCK
          value: {{ .Values.store.product.stock | toString | toJson }}
        - name: WAIT_SECONDS
          value: {{ $setup.waitSeconds | toString | toJson }}
        {{- include "store.wpCliEnv" . | nindent 8 }}
        {{- with include "store.mailEnv" . }}
        {{- . | nindent 8 }}
        {{- end }}
      resources:
        {{- toYaml $setup.resources | nindent 8 }}
      securityContext:
        {{- toYaml $setup.securityContext | nindent 8 }}
      volumeMounts:
        - name: html
          mountPath: /var/www/html
        - name: scripts
          mountPath: /opt/storefleet
          readOnly: true
  volumes:
    - name: html
      persistentVolumeClaim:
        claimName: {{ include "store.fullname" . }}-wordpress
    - name: scripts
      configMap:
        name: {{ include "store.fullname" . }}-scripts
{{- end -}}
