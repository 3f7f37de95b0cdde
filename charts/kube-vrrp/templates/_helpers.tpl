{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "kube-vrrp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name when it already contains the chart name
(helm install kube-vrrp ... gives kube-vrrp), else <release>-<chart>.
*/}}
{{- define "kube-vrrp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of cluster-scoped objects (ClusterRole, ClusterRoleBinding): the full name is unique in a
namespace only, so releases of the same name in two namespaces get the namespace too.
*/}}
{{- define "kube-vrrp.clusterName" -}}
{{- $full := include "kube-vrrp.fullname" . }}
{{- if eq .Release.Namespace $full }}
{{- $full }}
{{- else }}
{{- printf "%s-%s" .Release.Namespace $full | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kube-vrrp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-vrrp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-vrrp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kube-vrrp.labels" -}}
helm.sh/chart: {{ include "kube-vrrp.chart" . }}
{{ include "kube-vrrp.selectorLabels" . }}
app.kubernetes.io/component: agent
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kube-vrrp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kube-vrrp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name the existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kube-vrrp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The rules of the generated ClusterRole and Role (config/rbac/role.yaml, made by make generate
from the controllers' +kubebuilder:rbac markers, copied to files/rbac/role.yaml by make chart):
a dict from kind to rules, so the chart grants exactly what the agent's code declares.
*/}}
{{- define "kube-vrrp.generatedRules" -}}
{{- $rules := dict }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" (.Files.Get "files/rbac/role.yaml") -1 }}
{{- $obj := fromYaml $doc }}
{{- if and $obj (hasKey $obj "kind") }}
{{- $_ := set $rules $obj.kind $obj.rules }}
{{- end }}
{{- end }}
{{- if not (and (hasKey $rules "ClusterRole") (hasKey $rules "Role")) }}
{{- fail "files/rbac/role.yaml must hold the generated ClusterRole and Role: run make chart" }}
{{- end }}
{{- toYaml $rules }}
{{- end }}

{{/*
The --metrics-bind-address of the agent: metrics.bindAddress, or the node's IP (the HOST_IP
variable, status.hostIP), in brackets so that an IPv6 address works too.
*/}}
{{- define "kube-vrrp.metricsBindAddress" -}}
{{- printf "[%s]:%d" (.Values.metrics.bindAddress | default "$(HOST_IP)") (.Values.metrics.port | int) }}
{{- end }}
