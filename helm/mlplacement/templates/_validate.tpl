{{/*
Rules the values schema cannot state (it compares no two fields), checked at render time so `helm install` fails
before the operator would refuse to start. Messages never repeat a value: key material must not reach CI logs.
*/}}
{{- define "mlplacement.validate" -}}
{{- $le := .Values.leaderElection -}}
{{- if not (and (lt (int $le.retryPeriodSeconds) (int $le.renewDeadlineSeconds)) (lt (int $le.renewDeadlineSeconds) (int $le.leaseDurationSeconds))) -}}
{{- fail (printf "leaderElection: needs retryPeriodSeconds < renewDeadlineSeconds < leaseDurationSeconds (the leader must stop before a standby may take over); got %d, %d, %d" (int $le.retryPeriodSeconds) (int $le.renewDeadlineSeconds) (int $le.leaseDurationSeconds)) -}}
{{- end -}}
{{- range $keyId, $pem := .Values.trustedKeys.keys -}}
{{- if not (hasPrefix "-----BEGIN PUBLIC KEY-----" (trim $pem)) -}}
{{- fail (printf "trustedKeys.keys.%s: not a PEM public key (it must begin with -----BEGIN PUBLIC KEY-----; the value is not shown)" $keyId) -}}
{{- end -}}
{{- end -}}
{{- end -}}
