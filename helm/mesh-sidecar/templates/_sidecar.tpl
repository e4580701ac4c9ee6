{{/*
The sidecar container, shared by the native (init container) and the plain (second container)
layouts. Call with (dict "root" $ "adminPort" N "ingressPort" N); the caller appends
`restartPolicy` or `lifecycle`.
*/}}
{{- define "mesh-sidecar.sidecarContainer" -}}
{{- $root := .root }}
{{- $values := $root.Values -}}
- name: mesh-sidecar
  image: {{ include "mesh-sidecar.sidecarImage" $root }}
  imagePullPolicy: {{ $values.sidecar.image.pullPolicy }}
  args: [--config, /etc/mesh-sidecar/config/config.yaml]
  ports:
    - name: admin
      containerPort: {{ .adminPort }}
      protocol: TCP
    - name: ingress
      containerPort: {{ .ingressPort }}
      protocol: TCP
  env:
    # The ingress forwards to the app over the pod's loopback.
    - name: APP_URL
      value: {{ printf "http://127.0.0.1:%d" (int $values.app.port) | quote }}
    {{- if $values.kafka.bootstrapSecret.name }}
    - name: KAFKA_BOOTSTRAP
      valueFrom:
        secretKeyRef:
          name: {{ $values.kafka.bootstrapSecret.name }}
          key: {{ $values.kafka.bootstrapSecret.key }}
    {{- else if $values.kafka.bootstrap }}
    - name: KAFKA_BOOTSTRAP
      value: {{ join "," $values.kafka.bootstrap | quote }}
    {{- end }}
    {{- with $values.kafka.sasl.existingSecret }}
    # SASL credentials, for the config to reference as ${KAFKA_SASL_USERNAME} etc.
    - name: KAFKA_SASL_MECHANISM
      valueFrom:
        secretKeyRef:
          name: {{ . }}
          key: {{ $values.kafka.sasl.mechanismKey }}
    - name: KAFKA_SASL_USERNAME
      valueFrom:
        secretKeyRef:
          name: {{ . }}
          key: {{ $values.kafka.sasl.usernameKey }}
    - name: KAFKA_SASL_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ . }}
          key: {{ $values.kafka.sasl.passwordKey }}
    {{- end }}
    {{- with $values.sidecar.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $values.sidecar.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  startupProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml $values.sidecar.startupProbe | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml $values.sidecar.livenessProbe | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    {{- toYaml $values.sidecar.readinessProbe | nindent 4 }}
  {{- with $values.sidecar.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $values.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    - name: sidecar-config
      mountPath: /etc/mesh-sidecar/config
      readOnly: true
    # Node's scratch space; the root filesystem is read-only.
    - name: sidecar-tmp
      mountPath: /tmp
    {{- if $values.kafka.tls.existingSecret }}
    - name: kafka-tls
      mountPath: {{ $values.kafka.tls.mountPath }}
      readOnly: true
    {{- end }}
    {{- with $values.sidecar.volumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
