{{/*
The Service controller (kube-vrrp controller, docs/design.md §7.12): names and labels of its
objects, apart from the agent's so that no selector of the agent's takes in its pod.
*/}}
{{- define "kube-vrrp.lbName" -}}
{{- printf "%s-lb-controller" (include "kube-vrrp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-vrrp.lbClusterName" -}}
{{- printf "%s-lb-controller" (include "kube-vrrp.clusterName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kube-vrrp.lbSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-lb-controller" (include "kube-vrrp.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kube-vrrp.lbLabels" -}}
helm.sh/chart: {{ include "kube-vrrp.chart" . }}
{{ include "kube-vrrp.lbSelectorLabels" . }}
app.kubernetes.io/component: lb-controller
app.kubernetes.io/part-of: {{ include "kube-vrrp.name" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The rules of the controller's generated ClusterRole and Role (config/rbac/lb_controller_role.yaml,
made by make generate from the markers of controllers/loadbalancer alone, copied to
files/rbac/lb_controller_role.yaml by make chart): a dict from kind to rules.
*/}}
{{- define "kube-vrrp.lbGeneratedRules" -}}
{{- $rules := dict }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" (.Files.Get "files/rbac/lb_controller_role.yaml") -1 }}
{{- $obj := fromYaml $doc }}
{{- if and $obj (hasKey $obj "kind") }}
{{- $_ := set $rules $obj.kind $obj.rules }}
{{- end }}
{{- end }}
{{- if not (and (hasKey $rules "ClusterRole") (hasKey $rules "Role")) }}
{{- fail "files/rbac/lb_controller_role.yaml must hold the generated ClusterRole and Role: run make chart" }}
{{- end }}
{{- toYaml $rules }}
{{- end }}
