{{/*
logveil.config: logveil.yaml, built from the values as a dict and written
with toYaml, in the schema `logveil check-config` validates
(sidecar/conf.c, sidecar/output/{es,loki,file}.c). Strings a user gives that
logveil would expand as ${VAR} go through logveil.literal.
*/}}
{{- define "logveil.config" -}}
{{- $v := .values -}}
{{- $p := include "logveil.paths" . | fromYaml -}}
{{- $conf := dict "environment" $v.environment "log_level" $v.logLevel -}}
{{- $_ := set $conf "state_dir" $p.state -}}
{{- $_ := set $conf "shutdown_timeout" $v.shutdownTimeout -}}

{{- /* input: the application container's files */ -}}
{{- $in := dict "type" "tail" "read_from" $v.input.readFrom -}}
{{- $_ := set $in "checkpoint" (printf "%s/tail.ckpt" $p.state) -}}
{{- if eq $v.input.mode "podLogs" -}}
{{- $_ := set $in "paths" (list (printf "%s/%s/*.log" $p.podLogs $v.app.containerName)) -}}
{{- $_ := set $in "format" $v.input.podLogs.format -}}
{{- else -}}
{{- $paths := list -}}
{{- range $v.input.sharedVolume.files -}}
{{- $paths = append $paths (printf "%s/%s" $v.input.sharedVolume.mountPath (include "logveil.literal" .)) -}}
{{- end -}}
{{- $_ := set $in "paths" $paths -}}
{{- $_ := set $in "format" $v.input.sharedVolume.format -}}
{{- end -}}
{{- with $v.input.multiline -}}
{{- if .enabled -}}
{{- $m := dict "timeout" .timeout "max_lines" (int .maxLines) -}}
{{- if .continue }}{{ $_ := set $m "continue" (include "logveil.literal" .continue) }}{{ end -}}
{{- $_ := set $in "multiline" $m -}}
{{- end -}}
{{- end -}}
{{- $_ := set $conf "inputs" (list $in) -}}

{{- /* redaction */ -}}
{{- $r := $v.redact -}}
{{- $redact := dict "match" "contains" "action" $r.action "replacement" $r.replacement -}}
{{- $_ := set $redact "builtin_patterns" $r.builtinPatterns -}}
{{- $_ := set $redact "count_field" $r.countField -}}
{{- $_ := set $redact "keys" (concat $r.keys $r.extraKeys) -}}
{{- if $r.patterns -}}
{{- $pats := list -}}
{{- range $r.patterns -}}
{{- $pat := deepCopy . -}}
{{- $_ := set $pat "pattern" (include "logveil.literal" .pattern) -}}
{{- $pats = append $pats $pat -}}
{{- end -}}
{{- $_ := set $redact "patterns" $pats -}}
{{- end -}}
{{- if and $r.hmacKeys $r.hmacKeySecret.name -}}
{{- fail "redact: give hmacKeys or hmacKeySecret, not both" -}}
{{- end -}}
{{- if $r.hmacKeys -}}
{{- $keys := list -}}
{{- range $r.hmacKeys -}}
{{- $keys = append $keys (dict "id" .id "file" (include "logveil.secretPath" .secret)) -}}
{{- end -}}
{{- $_ := set $redact "hmac_keys" $keys -}}
{{- else if $r.hmacKeySecret.name -}}
{{- $_ := set $redact "hmac_key_file" (include "logveil.secretPath" $r.hmacKeySecret) -}}
{{- end -}}
{{- $_ := set $conf "redact" $redact -}}

{{- /* the audit trail */ -}}
{{- with $v.audit -}}
{{- if .enabled -}}
{{- $audit := dict "key_file" (include "logveil.secretPath" .keySecret) -}}
{{- if .keyId }}{{ $_ := set $audit "key_id" .keyId }}{{ end -}}
{{- if .stream }}{{ $_ := set $audit "stream" (include "logveil.literal" .stream) }}{{ end -}}
{{- $_ := set $conf "audit" $audit -}}
{{- end -}}
{{- end -}}

{{- /* sampling: the environment's profile, with the rates set here (a null
rate is absent when logveil is a dependency: Helm drops nulls when it
merges the values) */ -}}
{{- $s := $v.sampling -}}
{{- $profile := dict "levels" (dict "WARN" 1.0 "ERROR" 1.0 "FATAL" 1.0) -}}
{{- if not (kindIs "invalid" $s.default) }}{{ $_ := set $profile "default" $s.default }}{{ end -}}
{{- $unknown := dict -}}
{{- range $stream := list "stdout" "stderr" -}}
{{- $rate := index $s.unknown $stream -}}
{{- if not (kindIs "invalid" $rate) }}{{ $_ := set $unknown $stream $rate }}{{ end -}}
{{- end -}}
{{- if $unknown }}{{ $_ := set $profile "unknown" $unknown }}{{ end -}}
{{- $sampling := dict "key" "trace_id" "always_keep" $s.alwaysKeep -}}
{{- $_ := set $sampling "profiles" (dict $v.environment $profile) -}}
{{- if $s.rateLimit -}}
{{- $_ := set $sampling "rate_limit" $s.rateLimit -}}
{{- $_ := set $sampling "burst" (default $s.rateLimit $s.burst) -}}
{{- end -}}
{{- $_ := set $conf "sampling" $sampling -}}

{{- $enrich := dict "environment_field" "environment" "kubernetes" true -}}
{{- if $v.enrich.labels -}}
{{- $_ := set $enrich "labels_file" (printf "%s/labels" $p.podinfo) -}}
{{- end -}}
{{- $_ := set $conf "enrich" $enrich -}}
{{- $_ := set $conf "limits" (dict "max_line" $v.limits.maxLine "max_depth" (int $v.limits.maxDepth)) -}}

{{- $buffer := dict "max_bytes" (printf "%dMiB" (int $v.buffer.maxMiB)) "when_full" $v.buffer.whenFull -}}
{{- if $v.buffer.spool.enabled -}}
{{- $_ := set $buffer "spool_dir" (printf "%s/spool" $p.state) -}}
{{- $_ := set $buffer "spool_max_bytes" (printf "%dMiB" (int $v.buffer.spool.maxMiB)) -}}
{{- end -}}
{{- $_ := set $conf "buffer" $buffer -}}
{{- $_ := set $conf "admin" (dict "listen" (printf "0.0.0.0:%d" (int $v.admin.port)) "probe_listen" (printf "0.0.0.0:%d" (int $v.admin.probePort))) -}}

{{- /* outputs */ -}}
{{- $outs := list -}}
{{- $o := $v.outputs -}}
{{- if $o.stdout.enabled -}}
{{- $outs = append $outs (dict "type" "stdout") -}}
{{- end -}}
{{- if $o.file.enabled -}}
{{- $f := dict "type" "file" "name" $o.file.name "max_files" (int $o.file.maxFiles) "fsync" false -}}
{{- $_ := set $f "path" (printf "%s/%s.log" $p.state $o.file.name) -}}
{{- $_ := set $f "max_bytes" $o.file.maxBytes -}}
{{- $outs = append $outs $f -}}
{{- end -}}
{{- with $o.elasticsearch -}}
{{- if .enabled -}}
{{- $es := dict "type" "elasticsearch" "name" "elasticsearch" "urls" .urls -}}
{{- $_ := set $es "concurrency" (int .concurrency) -}}
{{- $_ := set $es "gzip" .gzip -}}
{{- $_ := set $es "dead_letter" (printf "%s/elasticsearch.deadletter.jsonl" $p.state) -}}
{{- if .dataStream -}}
{{- $_ := set $es "data_stream" .dataStream -}}
{{- else -}}
{{- $_ := set $es "index" (include "logveil.literal" .index) -}}
{{- end -}}
{{- if .username }}{{ $_ := set $es "username" .username }}{{ end -}}
{{- if .passwordSecret.name }}{{ $_ := set $es "password_file" (include "logveil.secretPath" .passwordSecret) }}{{ end -}}
{{- if .apiKeySecret.name }}{{ $_ := set $es "api_key_file" (include "logveil.secretPath" .apiKeySecret) }}{{ end -}}
{{- $tls := dict -}}
{{- if .tls.caSecret.name }}{{ $_ := set $tls "ca_file" (include "logveil.secretPath" .tls.caSecret) }}{{ end -}}
{{- if .tls.insecureSkipVerify }}{{ $_ := set $tls "insecure_skip_verify" true }}{{ end -}}
{{- if $tls }}{{ $_ := set $es "tls" $tls }}{{ end -}}
{{- $outs = append $outs $es -}}
{{- end -}}
{{- end -}}
{{- with $o.loki -}}
{{- if .enabled -}}
{{- $loki := dict "type" "loki" "name" "loki" "url" .url "labels" .labels -}}
{{- $_ := set $loki "structured_metadata" .structuredMetadata -}}
{{- $_ := set $loki "concurrency" (int .concurrency) -}}
{{- $_ := set $loki "dead_letter" (printf "%s/loki.deadletter.jsonl" $p.state) -}}
{{- if .tenant }}{{ $_ := set $loki "tenant" .tenant }}{{ end -}}
{{- if .username }}{{ $_ := set $loki "username" .username }}{{ end -}}
{{- if .passwordSecret.name }}{{ $_ := set $loki "password_file" (include "logveil.secretPath" .passwordSecret) }}{{ end -}}
{{- if .bearerTokenSecret.name }}{{ $_ := set $loki "bearer_token_file" (include "logveil.secretPath" .bearerTokenSecret) }}{{ end -}}
{{- $tls := dict -}}
{{- if .tls.caSecret.name }}{{ $_ := set $tls "ca_file" (include "logveil.secretPath" .tls.caSecret) }}{{ end -}}
{{- if .tls.insecureSkipVerify }}{{ $_ := set $tls "insecure_skip_verify" true }}{{ end -}}
{{- if $tls }}{{ $_ := set $loki "tls" $tls }}{{ end -}}
{{- $outs = append $outs $loki -}}
{{- end -}}
{{- end -}}
{{- if not $outs -}}
{{- fail "logveil: no output enabled; enable one of outputs.stdout, file, elasticsearch, loki" -}}
{{- end -}}
{{- $_ := set $conf "outputs" $outs -}}
{{- toYaml $conf -}}
{{- end -}}
