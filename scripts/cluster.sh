# The cluster profile of the local stack (sourced by scripts/stack, not run):
# 3 Nomad servers (Raft, bootstrap_expect = 3) and 3 clients on 127.0.0.1, beside the
# dev agent (4646-4648, left alone). ACLs on and bootstrapped, mutual TLS everywhere.
#
#   servers s1 s2 s3: http/rpc/serf 4701-4703, 4711-4713, 4721-4723
#   clients c1 c2 c3: http 4731, 4741, 4751; dynamic ports 14000-14999, 15000-15999,
#                     16000-16999 (disjoint from each other and from the dev agent's
#                     20000-32000: all clients share one host network namespace)
#
# State: $CLUSTER_DIR (certs, agent configs, the management token (mode 600), env file
# for tests); agents' data dirs and `models` volumes under a temp dir named in
# $RUN_DIR/cluster.datadir. Pids in $RUN_DIR/cluster-<agent>.pid.
# shellcheck shell=bash

CLUSTER_DIR="$STACK_DIR/cluster"
CLUSTER_SERVERS=(s1 s2 s3)
CLUSTER_CLIENTS=(c1 c2 c3)
declare -A CLUSTER_PORT=([s1]=4701 [s2]=4711 [s3]=4721 [c1]=4731 [c2]=4741 [c3]=4751)
declare -A CLUSTER_DYNAMIC=([c1]=14000 [c2]=15000 [c3]=16000)

cluster_addresses() {
  local a out=""
  for a in "${CLUSTER_SERVERS[@]}"; do out+="${out:+,}https://127.0.0.1:${CLUSTER_PORT[$a]}"; done
  printf '%s\n' "$out"
}

# cluster_curl PORT PATH: a GET with the CLI certificate and the management token.
cluster_curl() {
  local token=""
  [ -f "$CLUSTER_DIR/management.token" ] && token=$(cat "$CLUSTER_DIR/management.token")
  curl -fsS --max-time 3 --cacert "$CLUSTER_DIR/tls/nomad-agent-ca.pem" \
    --cert "$CLUSTER_DIR/tls/global-cli-nomad.pem" --key "$CLUSTER_DIR/tls/global-cli-nomad-key.pem" \
    ${token:+-H "X-Nomad-Token: $token"} "https://127.0.0.1:$1/v1/$2"
}

cluster_leader() {
  local leader
  leader=$(cluster_curl "${CLUSTER_PORT[s1]}" status/leader) || return 1
  [ "$leader" != '""' ]
}

# Every server sees a leader, three raft voters, and three clients are ready with a
# healthy docker driver.
cluster_ready() {
  local s nodes leader raft
  for s in "${CLUSTER_SERVERS[@]}"; do
    leader=$(cluster_curl "${CLUSTER_PORT[$s]}" status/leader) || return 1
    [ "$leader" != '""' ] || return 1
  done
  nodes=$(cluster_curl "${CLUSTER_PORT[s1]}" "nodes?resources=false") || return 1
  # A restarted server rejoins as a non-voter until autopilot promotes it: until then,
  # losing one more server would lose the quorum.
  raft=$(cluster_curl "${CLUSTER_PORT[s1]}" operator/raft/configuration) || return 1
  python3 - "$nodes" "$raft" <<'PY'
import json, sys
nodes, raft = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ready = [n for n in nodes if n["Status"] == "ready"
         and n.get("Drivers", {}).get("docker", {}).get("Healthy")]
voters = [s for s in raft["Servers"] if s["Voter"]]
sys.exit(0 if len(ready) >= 3 and len(voters) == 3 else 1)
PY
}

cluster_certs() {
  local bin=$1 tls="$CLUSTER_DIR/tls"
  rm -rf "$tls" && mkdir -p "$tls"
  # Fresh certificates on every start: nothing to expire between runs.
  (
    cd "$tls"
    "$bin" tls ca create >/dev/null
    "$bin" tls cert create -server -region global >/dev/null 2>&1
    "$bin" tls cert create -client >/dev/null
    "$bin" tls cert create -cli >/dev/null
  ) || die "nomad tls could not make the cluster's certificates"
  chmod 600 "$tls"/*-key.pem
}

# cluster_config NAME DATA: the agent's HCL on stdout.
cluster_config() {
  local name=$1 data=$2 port=${CLUSTER_PORT[$1]} tls="$CLUSTER_DIR/tls" role cert s
  local joins="" rpcs=""
  for s in "${CLUSTER_SERVERS[@]}"; do
    joins+="${joins:+, }\"127.0.0.1:$((CLUSTER_PORT[$s] + 2))\""
    rpcs+="${rpcs:+, }\"127.0.0.1:$((CLUSTER_PORT[$s] + 1))\""
  done
  case $name in s*) role=server cert=global-server-nomad ;; *) role=client cert=global-client-nomad ;; esac
  cat <<HCL
# Written by scripts/stack (cluster profile).
name      = "nomadml-$name"
data_dir  = "$data/$name/agent"
bind_addr = "127.0.0.1"
disable_update_check = true
ports {
  http = $port
  rpc  = $((port + 1))
  serf = $((port + 2))
}
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
acl { enabled = true }
tls {
  http = true
  rpc  = true
  ca_file   = "$tls/nomad-agent-ca.pem"
  cert_file = "$tls/$cert.pem"
  key_file  = "$tls/$cert-key.pem"
  verify_server_hostname = true
  verify_https_client    = true
}
HCL
  if [ "$role" = server ]; then
    cat <<HCL
server {
  enabled          = true
  bootstrap_expect = 3
  server_join { retry_join = [$joins] }
}
HCL
    return
  fi
  local low=${CLUSTER_DYNAMIC[$name]}
  cat <<HCL
client {
  enabled           = true
  servers           = [$rpcs]
  network_interface = "lo"
  # Three clients on one host: their own cgroups, alloc dirs and dynamic ports.
  cgroup_parent     = "nomadml-cluster-$name"
  alloc_dir         = "$data/$name/allocs"
  min_dynamic_port  = $low
  max_dynamic_port  = $((low + 999))
  meta { "nomadml.cluster_node" = "$name" }
  options = {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
  host_volume "models" {
    path      = "$data/$name/volumes/models"
    read_only = false
  }
}
plugin "docker" {
  config {
    # As the dev agent: never garbage-collect images (no internet here), and never
    # reap containers as "dangling": the other clients' containers share this engine.
    gc {
      image = false
      dangling_containers { enabled = false }
    }
    extra_labels = ["job_name", "task_group_name", "task_name", "node_id"]
    # The retraining job's nomadml task (retraining.nomadml_image) mounts the engine's
    # socket (it builds and pushes the model image, runs the serving images of the
    # evaluation), a scratch folder and certs.d by host path: as on the dev agent.
    volumes { enabled = true }
  }
}
plugin "raw_exec" {
  config { enabled = true }
}
HCL
}

# cluster_config_current DATA: every agent runs the configuration cluster_config writes.
cluster_config_current() {
  local a
  for a in "${CLUSTER_SERVERS[@]}" "${CLUSTER_CLIENTS[@]}"; do
    cluster_config "$a" "$1" | cmp -s - "$CLUSTER_DIR/$a.hcl" || return 1
  done
}

cluster_agent_alive() { pid_alive "cluster-$1" "$(nomad_bin)"; }

up_cluster() {
  local bin a data
  bin="$(nomad_bin)"
  if [ -f "$RUN_DIR/cluster.datadir" ]; then
    if cluster_ready 2>/dev/null; then
      say "nomad cluster (ours) already running"
      cluster_config_current "$(cat "$RUN_DIR/cluster.datadir")" ||
        say "its agents run an older configuration than scripts/cluster.sh writes now;" \
          "restart it: scripts/stack down --cluster && scripts/stack up --cluster"
      return
    fi
    if cluster_repair; then return; fi
    say "stale cluster state and no agent running: starting afresh"
    down_cluster
  fi
  for a in "${CLUSTER_SERVERS[@]}" "${CLUSTER_CLIENTS[@]}"; do
    if curl -s --max-time 1 -o /dev/null "http://127.0.0.1:${CLUSTER_PORT[$a]}/" ||
      curl -sk --max-time 1 -o /dev/null "https://127.0.0.1:${CLUSTER_PORT[$a]}/"; then
      die "port ${CLUSTER_PORT[$a]} (cluster agent $a) is taken by a process scripts/stack did not start"
    fi
  done
  bin="$("$ROOT/scripts/build-nomad")"
  mkdir -p "$CLUSTER_DIR" && chmod 700 "$CLUSTER_DIR"
  rm -f "$CLUSTER_DIR/management.token" "$CLUSTER_DIR/env"
  cluster_certs "$bin"
  data="$(mktemp -d "${TMPDIR:-/tmp}/nomadml-cluster.XXXXXX")"
  echo "$data" >"$RUN_DIR/cluster.datadir"
  say "starting the nomad cluster: 3 servers, 3 clients, ACLs, mutual TLS (state in $data)"
  for a in "${CLUSTER_SERVERS[@]}" "${CLUSTER_CLIENTS[@]}"; do
    mkdir -p "$data/$a/volumes/models"
    cluster_config "$a" "$data" >"$CLUSTER_DIR/$a.hcl"
    start "cluster-$a" "$LOG_DIR/cluster-$a.log" \
      env CHECKPOINT_DISABLE=1 PATH="$ROOT/.venv/bin:$PATH" "$bin" agent -config="$CLUSTER_DIR/$a.hcl"
  done
  record cluster
  cluster_all_alive() {
    local a
    for a in "${CLUSTER_SERVERS[@]}" "${CLUSTER_CLIENTS[@]}"; do cluster_agent_alive "$a" || return 1; done
  }
  leader_or_dead() { cluster_all_alive || return 0; cluster_leader; }
  wait_for "cluster leader" 120 leader_or_dead && cluster_all_alive ||
    { tail -20 "$LOG_DIR"/cluster-s1.log >&2; die "the cluster elected no leader within 120 s"; }
  # The bootstrap call is accepted once the ACL subsystem has caught up with the leader.
  acl_bootstrap() {
    local out
    out=$(curl -fsS --max-time 5 -X POST --cacert "$CLUSTER_DIR/tls/nomad-agent-ca.pem" \
      --cert "$CLUSTER_DIR/tls/global-cli-nomad.pem" --key "$CLUSTER_DIR/tls/global-cli-nomad-key.pem" \
      "https://127.0.0.1:${CLUSTER_PORT[s1]}/v1/acl/bootstrap") || return 1
    (umask 077 && python3 -c 'import json,sys; print(json.load(sys.stdin)["SecretID"])' \
      <<<"$out" >"$CLUSTER_DIR/management.token")
  }
  wait_for "ACL bootstrap" 60 acl_bootstrap || die "could not bootstrap the cluster's ACLs"
  chmod 600 "$CLUSTER_DIR/management.token"
  ready_or_dead() { cluster_all_alive || return 0; cluster_ready; }
  wait_for "nomad cluster (leader on every server, 3 clients ready, docker healthy)" 180 ready_or_dead &&
    cluster_all_alive ||
    { tail -20 "$LOG_DIR"/cluster-c1.log >&2; die "the cluster was not ready within 180 s"; }
  cluster_env >"$CLUSTER_DIR/env"
  chmod 600 "$CLUSTER_DIR/env"
}

# Some agents died (a test killed a server or a client): start them again on their own
# config and data, and wait for the whole cluster. False when none is left to join.
cluster_repair() {
  local a bin alive="" missing=""
  bin="$(nomad_bin)"
  for a in "${CLUSTER_SERVERS[@]}" "${CLUSTER_CLIENTS[@]}"; do
    if cluster_agent_alive "$a"; then alive+=" $a"; else missing+=" $a"; fi
  done
  [ -n "$alive" ] && [ -f "$CLUSTER_DIR/management.token" ] || return 1
  for a in $missing; do
    say "starting cluster agent $a again (its data kept; log of the last run in cluster-$a.log.1)"
    mv -f "$LOG_DIR/cluster-$a.log" "$LOG_DIR/cluster-$a.log.1" 2>/dev/null || true
    start "cluster-$a" "$LOG_DIR/cluster-$a.log" \
      env CHECKPOINT_DISABLE=1 PATH="$ROOT/.venv/bin:$PATH" "$bin" agent -config="$CLUSTER_DIR/$a.hcl"
  done
  wait_for "nomad cluster (leader on every server, 3 clients ready, docker healthy)" 180 cluster_ready ||
    die "the cluster was not whole again within 180 s (missing:$missing)"
}

down_cluster() {
  local data="" a node ids
  [ -f "$RUN_DIR/cluster.datadir" ] && data=$(cat "$RUN_DIR/cluster.datadir")
  local nodes=""
  if [ -n "$data" ] && cluster_leader 2>/dev/null; then
    nodes=$(cluster_curl "${CLUSTER_PORT[s1]}" "nodes?resources=false" |
      python3 -c 'import json,sys; print(" ".join(n["ID"] for n in json.load(sys.stdin)))' || true)
  fi
  # Clients first (so they do not spend their shutdown looking for servers), in parallel.
  for a in "${CLUSTER_CLIENTS[@]}"; do stop "cluster-$a" "$(nomad_bin)" & done
  wait
  for a in "${CLUSTER_SERVERS[@]}"; do stop "cluster-$a" "$(nomad_bin)" & done
  wait
  # Clients leave their task containers behind; remove the ones of this cluster's nodes.
  if [ -n "$nodes" ] && docker_answers; then
    for node in $nodes; do
      ids=$(docker ps -aq --filter "label=com.hashicorp.nomad.node_id=$node")
      [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || say "could not remove some task containers"
    done
  fi
  if [ -n "$data" ]; then
    grep -F " $data/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$data"
    rm -f "$RUN_DIR/cluster.datadir"
  fi
  rm -f "$CLUSTER_DIR/management.token" "$CLUSTER_DIR/env"
}

cluster_env() {
  echo "export NOMAD_ADDR=$(cluster_addresses)"
  echo "export NOMAD_CACERT=$CLUSTER_DIR/tls/nomad-agent-ca.pem"
  echo "export NOMAD_CLIENT_CERT=$CLUSTER_DIR/tls/global-cli-nomad.pem"
  echo "export NOMAD_CLIENT_KEY=$CLUSTER_DIR/tls/global-cli-nomad-key.pem"
  [ -f "$CLUSTER_DIR/management.token" ] &&
    echo "export NOMAD_TOKEN=$(cat "$CLUSTER_DIR/management.token")"
  echo "export NOMADML_REGISTRY=$REGISTRY_ADDR"
  echo "export PATH=$(dirname "$(nomad_bin)"):\$PATH"
}

cluster_status() {
  if [ ! -f "$RUN_DIR/cluster.datadir" ]; then echo "cluster:  down"
  elif cluster_ready 2>/dev/null; then echo "cluster:  ready ($(cluster_addresses))"
  else echo "cluster:  started, not ready ($(cluster_addresses))"; fi
}
