{{/* The dynamo-operator subchart's fullname (components/operator/templates/_helpers.tpl):
     the release name when it already contains the chart name, else <release>-dynamo-operator. */}}
{{- define "stand-in.operatorFullname" -}}
{{- if contains "dynamo-operator" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-dynamo-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stand-in.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dynamo-platform
gtc-demo.test/stand-in: dynamo-platform
{{- end -}}

{{/* Integration switches as operator-config.yaml computes them: enabled or installed. */}}
{{- define "stand-in.kaiEnabled" -}}
{{- $k := index .Values.global "kai-scheduler" -}}
{{- or $k.enabled $k.install -}}
{{- end -}}
{{- define "stand-in.groveEnabled" -}}
{{- or .Values.global.grove.enabled .Values.global.grove.install -}}
{{- end -}}
