[#- A model's router: HAProxy in front of every line (major) of one model. Its
    configuration is a Nomad template: the model's servers come from Nomad's service
    catalog, the routing table (weights, version routes) from the Nomad Variable
    nomadml writes; a change re-renders it and SIGUSR2 reloads HAProxy gracefully
    (master-worker: old connections finish on the old process). Two allocations, so
    that one restarting never leaves the model without a router. -#]
[% import "nomadml/_job.hcl" as job_meta -%]
job [[ job.id | hcl ]] {
  type        = "service"
[[ job_meta.placement_and_meta(job) ]]

  update {
    max_parallel     = 1
    min_healthy_time = "3s"
    healthy_deadline = "1m"
    auto_revert      = true
  }

  group "router" {
    count = [[ router.count ]]

    network {
      port "http" {
[%- if router.port %]
        static = [[ router.port ]]
[%- endif %]
      }
    }

    service {
      name     = [[ router.service | hcl ]]
      provider = "nomad"
      port     = "http"
      tags     = [[ router.tags | hcl ]]

      check {
        type     = "http"
        path     = "/nomadml-router/health"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "haproxy" {
      driver = "docker"

      config {
        image        = [[ router.image | hcl ]]
        network_mode = "host"
        command      = "/opt/router/haproxy"
        args         = ["-W", "-db", "-f", "/local/haproxy.cfg"]
      }

      # The router's own per-version metrics (requests by status code, a latency
      # histogram), counted in HAProxy's Lua and served at /nomadml-router/metrics.
      template {
        destination = "local/metrics.lua"
        change_mode = "noop"
        data        = <<EOT
[% include "router_metrics.lua" %]
EOT
      }

      template {
        destination   = "local/haproxy.cfg"
        change_mode   = "signal"
        change_signal = "SIGUSR2"
        # Nomad waits 5 s (min) to coalesce changes by default: a weight change, or a
        # rollback by routing, must reach HAProxy at once.
        wait {
          min = "10ms"
          max = "500ms"
        }
        # And Nomad waits a random 0..5 s (splay) before signalling a changed file:
        # measured, that was most of a weight change's 0.9..4.7 s.
        splay         = "0ms"
        data          = <<EOT
global
  maxconn 4096
  lua-load /local/metrics.lua

defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout http-request 10s
  retries 2
  option redispatch 1
  retry-on conn-failure empty-response response-timeout

frontend model
  bind {{ env "NOMAD_IP_http" }}:{{ env "NOMAD_PORT_http" }}
  http-request return status 200 content-type text/plain string ok if { path /nomadml-router/health }
  # What each version answered, counted here (gates read it from wherever the router
  # is reachable); and HAProxy's own exporter (per backend and server; latency only
  # as an average of recent requests, so the gates use the histogram above).
  http-request use-service lua.nomadml_metrics if { path /nomadml-router/metrics }
  http-request use-service prometheus-exporter if { path /nomadml-router/haproxy-metrics }
  http-request set-var(txn.ver) req.hdr(X-Model-Version)
  http-request set-var(txn.ver) path,field(2,/),regsub(^v,) if { path_reg ^/v[0-9]+/ }
  http-request set-path %[path,regsub(^/v[0-9]+/,/)] if { path_reg ^/v[0-9]+/ }
  http-request lua.nomadml_begin
  http-after-response set-var(txn.nomadml_seen) lua.nomadml_observe
  # The weighted pick rolls a request counter, not a die: every 100 requests through a
  # router split exactly as the table says.
  http-request track-sc0 str(all) table roll
  http-request set-var(txn.roll) sc0_http_req_cnt,mod(100)
{{- with nomadVar [[ router.variable | hcl ]] }}
{{- $known := "" }}{{ with .known }}{{ $known = .Value }}{{ end }}
{{- $routes := "" }}{{ with .routes }}{{ $routes = .Value }}{{ end }}
{{- $backends := "" }}{{ with .backends }}{{ $backends = .Value }}{{ end }}
{{- $check := "" }}{{ with .check }}{{ $check = .Value }}{{ end }}
{{- $written := "" }}{{ with .written }}{{ $written = .Value }}{{ end }}
{{- if eq (printf "%s\n%s\n%s" $known $routes $backends | sha256Hex) $check }}
  # Which write of the table this process serves: nomadml waits for it after a change
  # (a SIGUSR2 that arrives while HAProxy is still reloading is lost; then it writes
  # the table again, which renders and signals again).
  http-request return status 200 content-type text/plain string "{{ $check }} {{ $written }}" if { path /nomadml-router/table }
  acl versioned var(txn.ver) -m found
  acl known var(txn.ver) -m str {{ $known }}
  http-request return status 404 content-type application/json string "{\"error\":\"unknown model version\"}" if versioned !known
{{ $routes }}

backend roll
  stick-table type string size 1 expire 24h store http_req_cnt
{{- range $backends | split ";" }}{{ $part := . | split " " }}{{ if eq (len $part) 3 }}

backend {{ index $part 0 }}
  balance roundrobin
  http-error status 503 content-type application/json string "{\"error\":\"the router reached no server of model version {{ index $part 2 }}\"}"
  option httpchk GET /health
  http-check expect status 200
{{- range nomadService (index $part 1) }}{{ if in .Tags (printf "version=%s" (index $part 2)) }}
  server s{{ .Port }} {{ .Address }}:{{ .Port }} check inter 1s fall 2 rise 1
{{- end }}{{ end }}
{{- end }}{{ end }}
{{- else }}
# The routing table in the variable does not match its check (edited by hand):
# this line makes HAProxy refuse the file, so the running router keeps its last
# good configuration; `nomadml router show` says what is wrong.
nomadml-routing-table-is-invalid
{{- end }}
{{- end }}
EOT
      }

      # Stopping or restarting: leave the catalog first (clients that look there move
      # to the other router), then SIGUSR1: HAProxy's soft stop (it stops listening and
      # finishes the requests in flight) instead of Nomad's default SIGINT (a hard stop).
      shutdown_delay = "1s"
      kill_signal    = "SIGUSR1"
      kill_timeout   = "10s"

      resources {
        cpu    = [[ router.resources.cpu ]]
        memory = [[ router.resources.memory ]]
      }
    }
  }
}
