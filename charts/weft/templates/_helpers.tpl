{{/*
Shared names, labels and command-line pieces. Object names that other parts name on their command lines
(weft-ca, weft-agent, weft-ca-root-cert) are fixed; cluster-wide objects carry the release namespace so
two installs in different namespaces do not collide.
*/}}

{{- define "weft.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select a component's pods, stable across upgrades. (dict "ctx" $ "component" "ca") */}}
{{- define "weft.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The standard labels every object carries. Call with (dict "ctx" $ "component" "ca"). */}}
{{- define "weft.labels" -}}
{{ include "weft.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: weft
helm.sh/chart: {{ include "weft.chart" .ctx }}
{{- end }}

{{/* A component's image reference. Call with (dict "ctx" $ "component" "ca"). */}}
{{- define "weft.image" -}}
{{- $img := index .ctx.Values.images .component -}}
{{- $tag := $img.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion -}}
{{- $repo := $img.repository -}}
{{- if .ctx.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .ctx.Values.image.registry) $img.repository -}}
{{- end -}}
{{ printf "%s:%s" $repo $tag }}
{{- end }}

{{- define "weft.imagePullPolicy" -}}
{{- $img := index .ctx.Values.images .component -}}
{{ $img.pullPolicy | default .ctx.Values.image.pullPolicy }}
{{- end }}

{{/* The CA's in-cluster address and the name its serving certificate carries. */}}
{{- define "weft.caHost" -}}
weft-ca.{{ .Release.Namespace }}.svc
{{- end }}

{{/* Cluster-wide object names: suffixed with the release namespace. Call with (list $ "agent"). */}}
{{- define "weft.clusterName" -}}
{{- $ctx := index . 0 -}}
{{ printf "weft-%s-%s" (index . 1) $ctx.Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The root certificate the CA publishes in every namespace (as Istio's istio-ca-root-cert). */}}
{{- define "weft.rootConfigMap" -}}
weft-ca-root-cert
{{- end }}

{{/*
Read access to the kinds the `kubernetes` config source lists and watches (core/sources/kubernetes.ts),
read-only. The agent reads every kind but HTTPRoute (agent/main.ts AGENT_KINDS): call with
(dict "routes" false); the CA and the waypoints read them all: (dict "routes" true).
*/}}
{{- define "weft.configReaderRules" -}}
- apiGroups: ['']
  resources: [namespaces, pods, services]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: {{ if .routes }}[gateways, httproutes]{{ else }}[gateways]{{ end }}
  verbs: [get, list, watch]
- apiGroups: [security.istio.io]
  resources: [authorizationpolicies, peerauthentications]
  verbs: [get, list, watch]
{{- end }}

{{/*
The volumes and mounts through which agents and waypoints reach the CA: the root certificate (ConfigMap
published by the CA) and a projected service-account token for the audience istio-ca, which the CA checks
with a TokenReview. 43200 s (12 h), as Istio's ztunnel; the kubelet refreshes it well before then.
*/}}
{{- define "weft.caClientVolumes" -}}
- name: weft-ca-root
  configMap:
    name: {{ include "weft.rootConfigMap" . }}
- name: weft-token
  projected:
    sources:
      - serviceAccountToken:
          path: weft-token
          audience: istio-ca
          expirationSeconds: 43200
{{- end }}

{{- define "weft.caClientMounts" -}}
- name: weft-ca-root
  mountPath: /var/run/secrets/weft
  readOnly: true
- name: weft-token
  mountPath: /var/run/secrets/tokens
  readOnly: true
{{- end }}

{{/* The CA-client flags of `weft agent run` and `weft waypoint run` (cli/flags.ts CA_CLIENT_FLAGS). */}}
{{- define "weft.caClientArgs" -}}
- --ca-root
- /var/run/secrets/weft/root-cert.pem
- --token-file
- /var/run/secrets/tokens/weft-token
- --ca-address
- {{ include "weft.caHost" . }}:15012
- --ca-server-name
- {{ include "weft.caHost" . }}
- --trust-domain
- {{ .Values.trustDomain | quote }}
{{- end }}

{{- define "weft.commonEnv" -}}
- name: WEFT_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}
