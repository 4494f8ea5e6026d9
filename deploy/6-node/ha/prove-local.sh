#!/usr/bin/env bash
# The HA layer of deploy/6-node proven on one machine: one shard (shard 0) as a
# Patroni cluster of two PostgreSQL servers (db1, db2) with synchronous replication,
# a three-member etcd (db1..db3), and pgBackRest with its repository on app3, each
# "server" a network namespace with the address topology.json gives it, every file
# rendered from this folder's templates by render.mjs (as an operator renders them),
# every service started as its unit says. A client on app1 (ha-probe.mjs) writes
# one row after another and records each acknowledged one, while probing both nodes
# with pg_is_in_recovery() every 150 ms. Then:
#   a. the primary's postmaster is killed (kill -9): seconds until the standby takes
#      writes, and every acknowledged row must be on it;
#   b. the old primary rejoins as a standby (pg_rewind when its WAL diverged);
#   c. a planned `patronictl switchover` back: failed writes counted;
#   f. the standby's server is cut off the network: the primary's writes stall until
#      its walsender gives up, then go on alone (synchronous_mode, not strict); the
#      standby comes back and is synchronous again;
#   e. the primary's server is lost (network down, every process killed): failover
#      bounded by the leader key's TTL; the server comes back and rejoins;
#   d. pgBackRest: stanza, full backup (from the standby), WAL archive across all of
#      the above, then a point-in-time restore on db3 to a chosen moment: rows
#      acknowledged before it are there, rows sent after it are not.
# Throughout: no acknowledged row lost, never two writable nodes in one probe round.
#
# usage: deploy/6-node/ha/prove-local.sh        (as root; 3-5 minutes)
# exit:  0 proven, 1 a check failed, 75 another run holds the lock,
#        77 SKIPPED: this machine cannot run it (not root, no network namespaces,
#        packages missing and not installable); the reason is printed.
# Everything it starts it stops, and it removes its namespaces and bridge, on any exit
# (also Ctrl-C and SIGTERM; a run killed with SIGKILL is cleaned up by the next one).
# Logs stay in .stack/ha/logs/.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
HA=$ROOT/deploy/6-node/ha
WORK=$ROOT/.stack/ha                # git-ignored (.stack/)
FS=$WORK/fs                         # each host's files: FS/<host>/etc/patroni/..., FS/<host>/var/lib/...
LOGS=$WORK/logs
PROBE=$WORK/probe
EX_SKIP=77
NS_PREFIX=bfha-                     # deploy-local.sh uses bf-: the two can run side by side
BRIDGE=bfha-br0
LOCK=/run/lock/bf-ha-prove.lock
[[ -w /run/lock ]] || LOCK=/tmp/bf-ha-prove.lock
HOSTS=(db1 db2 db3 app1 app3)       # the shard's two nodes, the third etcd member (and restore host), the client, the repository
SHARD=0
PG_BIN=/usr/lib/postgresql/15/bin   # the templates name PostgreSQL 15, as topology.json does
STANDBY_CUT_S=20
SCRATCH_PORT=5439

declare -A ADDR=() PIDS=() T=()
CLEANING=0 POLICY_GUARD=0 METRICS_OK=no

say() { printf 'ha:local %s\n' "$*"; }
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
skip() { say "SKIPPED: $*"; say "RESULT SKIPPED (exit $EX_SKIP): the proof did not run on this machine"; exit $EX_SKIP; }
fail() { say "FAILED: $*"; exit 1; }

# ---- preflight -------------------------------------------------------------------------

install_packages() {
  local -a missing=()
  [[ -x $PG_BIN/initdb ]] || missing+=(postgresql-15)
  command -v patroni >/dev/null || missing+=(patroni)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  command -v pgbackrest >/dev/null || missing+=(pgbackrest)
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || skip "missing packages ${missing[*]}, and no apt-get to install them"
  say "installing ${missing[*]} with apt-get (the services they ship are not started)"
  # Debian starts a package's services on install (etcd on 127.0.0.1:2379): not here.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# prove-local.sh: no service starts while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    POLICY_GUARD=1
  fi
  local ok=1
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$LOGS/apt.log" 2>&1 || ok=0
  if ((POLICY_GUARD)); then rm -f /usr/sbin/policy-rc.d; POLICY_GUARD=0; fi
  ((ok)) || skip "apt-get could not install ${missing[*]}: $(tail -n 3 "$LOGS/apt.log" | tr '\n' ' ')"
  # Nor at the next boot of a machine run by systemd.
  [[ -d /run/systemd/system ]] && systemctl disable etcd.service patroni.service >/dev/null 2>&1 || true
}

preflight() {
  [[ $(id -u) == 0 ]] || skip "needs root (network namespaces, a bridge, PostgreSQL and etcd run as their own users); run it as root"
  local c
  for c in ip setpriv flock setsid openssl node curl awk; do
    command -v "$c" >/dev/null || skip "the '$c' command is missing"
  done
  mkdir -p "$LOGS"
  install_packages
  local u
  for u in postgres etcd nobody; do id "$u" >/dev/null 2>&1 || skip "no '$u' user (the postgresql-15 and etcd-server packages create theirs)"; done
  [[ -d $ROOT/node_modules/pg ]] || fail "node_modules/pg is missing: run npm install first"
}

preflight_netns() {
  local probe=${NS_PREFIX}preflight-$$ err
  if ! err=$(ip netns add "$probe" 2>&1); then skip "this machine refuses network namespaces: $err"; fi
  if ! err=$( { ip -n "$probe" link add bfha-pf0 type veth peer name bfha-pf1 && ip -n "$probe" link add bfha-pfbr type bridge; } 2>&1); then
    ip netns del "$probe" 2>/dev/null || true
    skip "network namespaces work but veth/bridge devices are refused: $err"
  fi
  ip netns del "$probe"
}

# ---- topology: addresses from topology.json, the shard's nodes from placement.json --------

read_topology() {
  eval "$(node --input-type=module -e '
    import { readFileSync } from "node:fs";
    const [topo, place, shard] = process.argv.slice(1);
    const t = JSON.parse(readFileSync(topo, "utf8")), p = JSON.parse(readFileSync(place, "utf8"));
    for (const h of t.hosts) console.log(`ADDR[${h.name}]=${h.address}`);
    const s = p.shards[Number(shard)];
    console.log(`PRIMARY=${s.nodes[0]} STANDBY=${s.nodes[1]} PG_PORT=${s.pg_port} REST_PORT=${s.rest_port} STANZA=bf-shard${s.shard}`);
    console.log(`REPO=${p.backup.repo_host} ETCD_PORT=${p.etcd.client_port} ETCD_MEMBERS=(${p.etcd.members.join(" ")})`);
  ' "$ROOT/deploy/6-node/topology.json" "$HA/placement.json" "$SHARD")"
  [[ $REPO == app3 && " ${ETCD_MEMBERS[*]} " == " db1 db2 db3 " && $PRIMARY == db1 && $STANDBY == db2 ]] ||
    fail "the proof expects shard 0 on db1+db2, etcd on db1..db3 and the repository on app3 (placement.json)"
}

# ---- cleanup -----------------------------------------------------------------------------

teardown() {
  local ns pid dev
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${NS_PREFIX}" || true); do
    # Everything running in one of our namespaces was started by this script.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  sleep 0.5
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${NS_PREFIX}" || true); do ip netns del "$ns" 2>/dev/null || true; done
  for dev in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^bfha-" || true); do
    ip link del "$dev" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  ((CLEANING)) && return
  CLEANING=1
  trap '' PIPE INT TERM
  set +e
  ((POLICY_GUARD)) && rm -f /usr/sbin/policy-rc.d
  say "cleanup: stopping everything this run started (exit $rc)" 2>/dev/null
  touch "$PROBE/stop" 2>/dev/null
  local key
  for key in "${!PIDS[@]}"; do kill -KILL "${PIDS[$key]}" 2>/dev/null; done
  teardown
  rm -rf "$FS" "$WORK/tls" "$WORK/secrets.env"
  if ip netns list 2>/dev/null | grep -q "^${NS_PREFIX}" || ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "cleanup: WARNING: namespaces or $BRIDGE still present; run this script again to clear them" 2>/dev/null
  else
    say "cleanup: done (namespaces, veths and $BRIDGE removed; logs kept in ${LOGS#"$ROOT"/})" 2>/dev/null
  fi
  exit "$rc"
}

# ---- the hosts -----------------------------------------------------------------------------

setup_network() {
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" type bridge stp_state 0
  ip link set "$BRIDGE" up          # no address: nothing of this machine's own network is touched
  local h ns
  for h in "${HOSTS[@]}"; do
    ns=$NS_PREFIX$h
    ip netns add "$ns"
    ip link add "bfha-v-$h" type veth peer name "bfha-p-$h"
    ip link set "bfha-p-$h" netns "$ns"
    ip -n "$ns" link set "bfha-p-$h" name eth0
    ip -n "$ns" addr add "${ADDR[$h]}/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip link set "bfha-v-$h" master "$BRIDGE"
    ip link set "bfha-v-$h" up
  done
}

# Environment of every service and tool: the host's pgBackRest config (archive_command,
# restore_command and Patroni's replica method inherit it), nothing of ours.
host_env() { # host
  printf '%s\n' PATH=$PG_BIN:/usr/bin:/bin LANG=C.UTF-8 "HOME=$FS/$1/var/lib/postgresql" \
    "PGBACKREST_CONFIG=$FS/$1/etc/pgbackrest/pgbackrest.conf" "PGBACKREST_CONFIG_INCLUDE_PATH=$FS/$1/etc/pgbackrest/conf.d"
}

as() { # host user cmd...: run in the host's namespace as that user, in the host's environment
  local host=$1 user=$2; shift 2
  local -a env=()
  mapfile -t env < <(host_env "$host")
  ip netns exec "$NS_PREFIX$host" setpriv --reuid="$user" --regid="$user" --init-groups -- env -i "${env[@]}" "$@"
}

start_bg() { # key host user cmd...: a long-running service, its log in LOGS/key.log
  local key=$1 host=$2 user=$3; shift 3
  local -a env=()
  mapfile -t env < <(host_env "$host")
  (exec setsid ip netns exec "$NS_PREFIX$host" setpriv --reuid="$user" --regid="$user" --init-groups -- env -i "${env[@]}" "$@") \
    >>"$LOGS/$key.log" 2>&1 </dev/null 9>&- &
  PIDS[$key]=$!
  disown "$!"
}

unit_exec() { # rendered unit file, instance: its ExecStart with %i filled in
  sed -n 's/^ExecStart=//p' "$1" | sed "s/%i/$2/g"
}

start_etcd() { # host: Debian's etcd.service: /usr/bin/etcd as etcd, EnvironmentFile=/etc/default/etcd
  local host=$1 line
  local -a vars=()
  while IFS= read -r line; do [[ $line =~ ^ETCD_[A-Z0-9_]*= ]] && vars+=("$line"); done <"$FS/$host/etc/default/etcd"
  (exec setsid ip netns exec "$NS_PREFIX$host" setpriv --reuid=etcd --regid=etcd --init-groups -- env -i PATH=/usr/bin:/bin "${vars[@]}" /usr/bin/etcd) \
    >>"$LOGS/etcd-$host.log" 2>&1 </dev/null 9>&- &
  PIDS[etcd-$host]=$!
  disown "$!"
}

start_patroni() { # host: bf-patroni@shard<N>.service (User=postgres)
  local -a cmd
  read -r -a cmd <<<"$(unit_exec "$FS/$1/etc/systemd/system/bf-patroni@.service" "shard$SHARD")"
  start_bg "patroni-$1" "$1" postgres "${cmd[@]}"
}

start_pgbr_server() { # host: bf-pgbackrest-server.service (postgres; on the repository host the proof keeps postgres as its owner)
  local -a cmd
  read -r -a cmd <<<"$(unit_exec "$FS/$1/etc/systemd/system/bf-pgbackrest-server.service" "")"
  start_bg "pgbackrest-$1" "$1" postgres "${cmd[@]}"
}

# ---- files: rendered as an operator renders them ------------------------------------------

secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

render_files() {
  rm -rf "$FS" "$WORK/tls"
  mkdir -p "$FS" "$PROBE"
  PG_PASSWORD=$(secret)
  umask 077
  cat >"$WORK/secrets.env" <<EOF
PG_PASSWORD=$PG_PASSWORD
PG_REPLICATION_PASSWORD=$(secret)
PG_REWIND_PASSWORD=$(secret)
PATRONI_API_PASSWORD=$(secret)
PGBACKREST_CIPHER_PASS=$(secret)
EOF
  umask 022
  # The one deviation from the files: this machine is not a 64 GB database box, and
  # other work shares it.
  cat >"$WORK/local.conf" <<'EOF'
# prove-local.sh only: sizes for a shared development machine.
shared_buffers = 64MB
effective_cache_size = 256MB
maintenance_work_mem = 32MB
autovacuum_work_mem = 16MB
wal_buffers = 4MB
max_wal_size = 256MB
min_wal_size = 64MB
huge_pages = off
EOF
  # The watchdog is off: /dev/watchdog would reset this whole machine, not a namespace.
  node "$HA/render.mjs" --out "$FS" --fs-root "$FS" --secrets "$WORK/secrets.env" --watchdog off --local-conf "$WORK/local.conf" |
    sed 's/^/    /'
  local h
  for h in db1 db2 db3; do
    install -d -o postgres -g postgres -m 0700 "$FS/$h/var/lib/postgresql" "$FS/$h/var/lib/postgresql/15"
    install -d -o postgres -g postgres -m 0755 "$FS/$h/var/run/postgresql"
    install -d -o etcd -g etcd -m 0700 "$FS/$h/var/lib/etcd"
    chown -R postgres:postgres "$FS/$h/etc/patroni"
  done
  install -d -o postgres -g postgres -m 0750 "$FS/$REPO/var/lib/pgbackrest"
  for h in db1 db2 db3 "$REPO"; do
    install -d -o postgres -g postgres -m 0750 "$FS/$h/var/spool/pgbackrest" "$FS/$h/var/log/pgbackrest" "$FS/$h/tmp/pgbackrest"
    install -d -m 0755 "$FS/$h/etc/pgbackrest/conf.d" "$FS/$h/var/lib/prometheus/node-exporter"
    chown root:postgres "$FS/$h/etc/pgbackrest/pgbackrest.conf"
  done
  bash "$HA/pgbackrest/make-tls.sh" "$WORK/tls" "db1=${ADDR[db1]}" "db2=${ADDR[db2]}" "db3=${ADDR[db3]}" "$REPO=${ADDR[$REPO]}"
  for h in db1 db2 db3 "$REPO"; do
    install -d -o postgres -g postgres -m 0750 "$FS/$h/etc/pgbackrest/tls"
    install -o postgres -g postgres -m 0644 "$WORK/tls/ca.crt" "$WORK/tls/$h.crt" "$FS/$h/etc/pgbackrest/tls/"
    install -o postgres -g postgres -m 0600 "$WORK/tls/$h.key" "$FS/$h/etc/pgbackrest/tls/"
  done
  install -d -o nobody -g nogroup -m 0755 "$PROBE"
}

# ---- waiting and looking -------------------------------------------------------------------

wait_until() { # timeout_s what cmd...: poll every 0.2 s
  local timeout=$1 what=$2 t0
  shift 2
  t0=$(now_ms)
  until "$@" >/dev/null 2>&1; do
    (($(now_ms) - t0 < timeout * 1000)) || fail "$what: not within ${timeout} s"
    sleep 0.2
  done
}

rest() { # host path: HTTP status of Patroni's REST API on that host, asked from app1
  ip netns exec "${NS_PREFIX}app1" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://${ADDR[$1]}:$REST_PORT$2" || true
}
is_primary() { [[ $(rest "$1" /primary) == 200 ]]; }
# A synchronous standby as the leader records it in etcd (only such a member may be
# promoted), asked of the leader: a member cut off from etcd answers from a stale view.
is_sync() {
  local h leader=
  for h in "$PRIMARY" "$STANDBY"; do [[ $h != "$1" ]] && is_primary "$h" && leader=$h; done
  [[ -n $leader && $(rest "$1" /sync) == 200 ]] || return 1
  ip netns exec "${NS_PREFIX}app1" curl -s --max-time 2 "http://${ADDR[$leader]}:$REST_PORT/cluster" |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const m = JSON.parse(s).members.find((x) => x.name === process.argv[1]);
      process.exit(m && m.role === "sync_standby" && m.state !== "stopped" ? 0 : 1); })' "$1"
}

etcd_healthy() {
  local eps=http://${ADDR[db1]}:$ETCD_PORT,http://${ADDR[db2]}:$ETCD_PORT,http://${ADDR[db3]}:$ETCD_PORT
  ip netns exec "${NS_PREFIX}app1" etcdctl --endpoints="$eps" --command-timeout=2s endpoint health 2>&1 | grep -c 'is healthy' | grep -qx 3
}

sql() { # host sql: as the superuser over the host's socket, in the engine's database
  as "$1" postgres "$PG_BIN/psql" -h "$FS/$1/var/run/postgresql" -p "$PG_PORT" -U postgres -d engine -XAtc "$2"
}

status() { # the probe's last summary: ACKS FAILS LAST_ACK_MS LAST_ACK_NODE ROUNDS MULTI WRITABLE
  [[ -f $PROBE/status ]] && eval "$(cat "$PROBE/status")"
}
acks_on_since() { status && [[ $LAST_ACK_NODE == "$1" ]] && ((LAST_ACK_MS > $2)); }
acks_since() { status && ((LAST_ACK_MS > $1)); }

dead() { # pid: gone, or a zombie
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
  [[ $st == Z* ]]
}

mark() { echo "$1 $2 $(now_ms)" >>"$WORK/marks"; }

patronictl() { # host args...
  local host=$1; shift
  as "$host" postgres /usr/bin/patronictl -c "$FS/$host/etc/patroni/shard$SHARD.yml" "$@"
}

rewound() { # host: did its Patroni run pg_rewind since the log line count $2?
  tail -n +"$2" "$LOGS/patroni-$1.log" | grep -qiE 'pg_rewind|rewind.*(success|done)|Running pg_rewind' && echo yes || echo "no (its WAL had not diverged)"
}
log_lines() { wc -l <"$LOGS/patroni-$1.log"; }

server_lost() { # host: the network goes, then every process on it (a power cut: no FIN, no RST)
  ip link set "bfha-v-$1" down
  local pid
  for pid in $(ip netns pids "$NS_PREFIX$1"); do kill -KILL "$pid" 2>/dev/null || true; done
  for key in "${!PIDS[@]}"; do [[ $key == *-"$1" ]] && unset "PIDS[$key]"; done
  # The dead postmaster's children go with it; wait until none is left.
  wait_until 30 "every process on $1 gone" bash -c "[[ -z \$(ip netns pids $NS_PREFIX$1) ]]"
}

server_back() { # host: power on: network, etcd, pgBackRest's server, Patroni (which finds its data directory)
  ip link set "bfha-v-$1" up
  start_etcd "$1"
  start_pgbr_server "$1"
  start_patroni "$1"
}

pitr_time() { # ms -> a recovery_target_time PostgreSQL and pgBackRest accept
  date -u -d "@$(awk -v ms="$1" 'BEGIN { printf "%.3f", ms / 1000 }')" '+%Y-%m-%d %H:%M:%S.%3N+00'
}

# ---- the proof -----------------------------------------------------------------------------

main() {
  preflight
  exec 9>"$LOCK"
  flock -w 300 9 || { say "another prove-local run holds $LOCK for more than 300 s"; exit 75; }
  preflight_netns
  trap cleanup EXIT
  trap 'say "interrupted"; exit 130' INT
  trap 'say "terminated"; exit 143' TERM
  trap 'exit 141' PIPE
  if ip netns list | grep -q "^${NS_PREFIX}" || ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "removing what an earlier, interrupted run left behind"
    teardown
  fi
  rm -f "$LOGS"/*.log "$WORK/marks" "$PROBE"/* 2>/dev/null || true
  read_topology
  local t0 t total0
  total0=$(now_ms)
  say "versions: $(patroni --version), etcd $(etcd --version | sed -n 's/^etcd Version: //p'), $(pgbackrest version), PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}')"

  say "1. hosts: namespaces ${HOSTS[*]/#/$NS_PREFIX} on bridge $BRIDGE, addresses of topology.json; files rendered by render.mjs"
  setup_network
  render_files

  t0=$(now_ms)
  say "2. etcd on ${ETCD_MEMBERS[*]} (Debian's etcd.service with the rendered /etc/default/etcd)"
  local h
  for h in "${ETCD_MEMBERS[@]}"; do start_etcd "$h"; done
  wait_until 60 "etcd healthy on 3 members" etcd_healthy
  T[etcd]=$(($(now_ms) - t0))

  t0=$(now_ms)
  say "3. shard $SHARD: bf-patroni@shard$SHARD on $PRIMARY (bootstraps the cluster), then on $STANDBY (a synchronous standby)"
  for h in db1 db2 db3 "$REPO"; do start_pgbr_server "$h"; done
  start_patroni "$PRIMARY"
  wait_until 120 "$PRIMARY primary" is_primary "$PRIMARY"
  T[bootstrap]=$(($(now_ms) - t0))
  t0=$(now_ms)
  start_patroni "$STANDBY"
  wait_until 180 "$STANDBY a synchronous standby" is_sync "$STANDBY"
  T[standby]=$(($(now_ms) - t0))
  say "    $(patronictl "$PRIMARY" list 2>&1 | grep -E "\| *db[0-9]" | tr -s ' ' | paste -sd ';' -)"
  say "    on $PRIMARY: synchronous_commit=$(sql "$PRIMARY" 'SHOW synchronous_commit') synchronous_standby_names=$(sql "$PRIMARY" 'SHOW synchronous_standby_names') archive_mode=$(sql "$PRIMARY" 'SHOW archive_mode') max_connections=$(sql "$PRIMARY" 'SHOW max_connections') data_checksums=$(sql "$PRIMARY" 'SHOW data_checksums')"

  t0=$(now_ms)
  say "4. pgBackRest on $REPO: stanza-create, check (WAL reaches the repository), a full backup (copied from the standby)"
  as "$REPO" postgres pgbackrest --stanza="$STANZA" stanza-create >"$LOGS/pgbr-stanza.log" 2>&1 || fail "stanza-create failed: $(tail -n 5 "$LOGS/pgbr-stanza.log")"
  as "$REPO" postgres pgbackrest --stanza="$STANZA" check >>"$LOGS/pgbr-stanza.log" 2>&1 || fail "pgbackrest check failed: $(tail -n 5 "$LOGS/pgbr-stanza.log")"
  T[stanza]=$(($(now_ms) - t0))
  t0=$(now_ms)
  as "$REPO" postgres pgbackrest --stanza="$STANZA" --type=full --log-level-console=info backup >"$LOGS/pgbr-backup.log" 2>&1 ||
    fail "the full backup failed: $(tail -n 5 "$LOGS/pgbr-backup.log")"
  T[backup]=$(($(now_ms) - t0))
  local from_standby=no
  grep -q "backup-standby\|wait for replay on the standby\|standby" "$LOGS/pgbr-backup.log" && from_standby=yes
  say "    full backup in $(secs "${T[backup]}") s (from the standby: $from_standby); $(as "$REPO" postgres pgbackrest --stanza="$STANZA" info 2>&1 | grep -E 'full backup|wal archive min/max' | tr -s ' ' | paste -sd ';' -)"

  say "5. the client on app1: a row at a time into ha_probe (each acknowledged id recorded), both nodes probed every 150 ms"
  (exec setsid ip netns exec "${NS_PREFIX}app1" setpriv --reuid=nobody --regid=nogroup --clear-groups -- env -i PATH=/usr/bin:/bin \
    node "$HA/ha-probe.mjs" run --nodes "db1=${ADDR[db1]}:$PG_PORT,db2=${ADDR[db2]}:$PG_PORT" --user engine --password "$PG_PASSWORD" --db engine \
    --events "$PROBE/events.jsonl" --status "$PROBE/status" --stop-file "$PROBE/stop" --every-ms 20 --probe-ms 150) \
    >>"$LOGS/probe.log" 2>&1 </dev/null 9>&- &
  PIDS[probe-app1]=$!
  disown "$!"
  wait_until 60 "the client's first acknowledged writes" bash -c "[[ -f $PROBE/status ]] && . $PROBE/status && ((ACKS > 50))"
  status && say "    $ACKS rows acknowledged on $LAST_ACK_NODE, writable: $WRITABLE"

  # a. crash of the primary's PostgreSQL
  local pm lines
  pm=$(head -n 1 "$FS/$PRIMARY/var/lib/postgresql/15/shard$SHARD/postmaster.pid")
  lines=$(log_lines "$PRIMARY")
  say "a. kill -9 of the primary's postmaster ($PRIMARY, pid $pm) under writes"
  t=$(now_ms); mark BEGIN crash
  kill -KILL "$pm"
  wait_until 90 "$STANDBY taking writes after the crash" acks_on_since "$STANDBY" "$t"
  T[crash]=$(($(now_ms) - t))
  sleep 1; mark END crash
  say "    $STANDBY took writes ~$(secs "${T[crash]}") s after the kill (exact figure below)"

  # b. the old primary rejoins
  t=$(now_ms); mark BEGIN rejoin
  wait_until 180 "$PRIMARY back as a synchronous standby" is_sync "$PRIMARY"
  T[rejoin]=$(($(now_ms) - t)); mark END rejoin
  REWIND_A=$(rewound "$PRIMARY" "$lines")
  say "b. $PRIMARY rejoined as the synchronous standby $(secs "${T[rejoin]}") s later (pg_rewind: $REWIND_A)"

  # c. planned switchover back to the placement's primary
  say "c. planned switchover: patronictl switchover --leader $STANDBY --candidate $PRIMARY --force"
  t=$(now_ms); mark BEGIN switchover
  patronictl "$PRIMARY" switchover --leader "$STANDBY" --candidate "$PRIMARY" --force >"$LOGS/switchover.log" 2>&1 ||
    fail "patronictl switchover failed: $(tail -n 5 "$LOGS/switchover.log")"
  wait_until 90 "$PRIMARY taking writes after the switchover" acks_on_since "$PRIMARY" "$t"
  T[switchover]=$(($(now_ms) - t))
  wait_until 180 "$STANDBY synchronous again after the switchover" is_sync "$STANDBY"
  mark END switchover
  say "    $PRIMARY primary again, $STANDBY synchronous standby again after $(secs "$(($(now_ms) - t))") s"

  # f. the standby's server vanishes from the network
  say "f. the standby's server ($STANDBY) cut off the network for ${STANDBY_CUT_S} s (no FIN, no RST)"
  t=$(now_ms); mark BEGIN standby_cut
  ip link set "bfha-v-$STANDBY" down
  sleep "$STANDBY_CUT_S"
  local acks_during
  status; acks_during=$ACKS
  ip link set "bfha-v-$STANDBY" up
  mark END standby_cut
  t=$(now_ms); mark BEGIN standby_back
  wait_until 180 "$STANDBY synchronous again after its network came back" is_sync "$STANDBY"
  T[standby_back]=$(($(now_ms) - t)); mark END standby_back
  say "    link back: $STANDBY synchronous again after $(secs "${T[standby_back]}") s"

  # e. the primary's server is lost
  lines=$(log_lines "$PRIMARY")
  say "e. the primary's server ($PRIMARY) lost: network down, every process on it killed (postgres, Patroni, etcd member, pgBackRest)"
  t=$(now_ms); mark BEGIN server_lost
  server_lost "$PRIMARY"
  wait_until 120 "$STANDBY taking writes after $PRIMARY was lost" acks_on_since "$STANDBY" "$t"
  T[server_lost]=$(($(now_ms) - t))
  sleep 1; mark END server_lost
  say "    $STANDBY took writes ~$(secs "${T[server_lost]}") s after the loss (bounded by the leader key's ttl)"
  lines=$(log_lines "$PRIMARY" 2>/dev/null || echo 1)
  t=$(now_ms); mark BEGIN server_back
  server_back "$PRIMARY"
  wait_until 180 "$PRIMARY back as a synchronous standby after its restart" is_sync "$PRIMARY"
  T[server_back]=$(($(now_ms) - t)); mark END server_back
  REWIND_E=$(rewound "$PRIMARY" "$lines")
  say "    $PRIMARY powered on again: synchronous standby after $(secs "${T[server_back]}") s (pg_rewind: $REWIND_E)"

  # d. point-in-time restore to a moment chosen now
  sleep 2
  local target; target=$(now_ms)
  echo "TARGET target $target" >>"$WORK/marks"
  sleep 3
  touch "$PROBE/stop"
  wait_until 30 "the client stopped" dead "${PIDS[probe-app1]}"
  unset 'PIDS[probe-app1]'
  status
  local final=$WRITABLE
  [[ $final == db1 || $final == db2 ]] || fail "no single writable node at the end (probe says: $final)"
  say "d. point-in-time restore of $STANZA to $(pitr_time "$target") (writes went on for 3 s after it), on db3 into a scratch directory"
  t0=$(now_ms)
  as "$REPO" postgres pgbackrest --stanza="$STANZA" check >>"$LOGS/pgbr-stanza.log" 2>&1 || fail "pgbackrest check after the failovers: $(tail -n 5 "$LOGS/pgbr-stanza.log")"
  local scratch=$FS/db3/var/lib/postgresql/15/restore-shard$SHARD
  install -d -o postgres -g postgres -m 0700 "$scratch"
  as db3 postgres pgbackrest --stanza="$STANZA" --pg1-path="$scratch" --type=time --target="$(pitr_time "$target")" \
    --target-action=promote --target-timeline=latest --archive-mode=off --log-level-console=info restore >"$LOGS/pgbr-restore.log" 2>&1 ||
    fail "pgbackrest restore failed: $(tail -n 5 "$LOGS/pgbr-restore.log")"
  install -m 0640 -o postgres -g postgres /dev/null "$LOGS/restore-postgres.log"
  as db3 postgres "$PG_BIN/pg_ctl" -D "$scratch" -l "$LOGS/restore-postgres.log" -w -t 300 \
    -o "-c port=$SCRATCH_PORT -c listen_addresses=${ADDR[db3]} -c unix_socket_directories=$scratch -c synchronous_standby_names= -c archive_mode=off -c hba_file=$FS/db3/etc/patroni/pg_hba.conf" \
    start >"$LOGS/restore-pgctl.log" 2>&1 || fail "the restored copy did not start: $(tail -n 5 "$LOGS/restore-postgres.log")"
  wait_until 300 "the restored copy reached its target and was promoted" \
    bash -c "[[ \$(ip netns exec ${NS_PREFIX}db3 setpriv --reuid=postgres --regid=postgres --init-groups -- $PG_BIN/psql -h $scratch -p $SCRATCH_PORT -U postgres -d engine -XAtc 'SELECT pg_is_in_recovery()') == f ]]"
  T[restore]=$(($(now_ms) - t0))
  say "    restored and promoted in $(secs "${T[restore]}") s: $(grep -E 'recovery stopping|consistent recovery state|selected new timeline' "$LOGS/restore-postgres.log" | sed 's/^.*LOG: *//' | head -n 2 | paste -sd ';' -)"

  say "6. judging: every acknowledged row on the final primary ($final), the probe rounds, the restore"
  ip netns exec "${NS_PREFIX}app1" setpriv --reuid=nobody --regid=nogroup --clear-groups -- env -i PATH=/usr/bin:/bin \
    node "$HA/ha-probe.mjs" verify --events "$PROBE/events.jsonl" --marks "$WORK/marks" \
    --final "postgres://engine:$PG_PASSWORD@${ADDR[$final]}:$PG_PORT/engine" \
    --restored "postgres://engine:$PG_PASSWORD@${ADDR[db3]}:$SCRATCH_PORT/engine" --target-ms "$target" >"$WORK/verify.out" 2>&1 ||
    fail "verify failed: $(tail -n 5 "$WORK/verify.out")"
  sed 's/^/    /' "$WORK/verify.out"

  say "7. the figures the alerts read: bf-ha-metrics.sh (bf-ha-metrics.timer) on db1, db2 and $REPO"
  METRICS_OK=yes
  for h in db1 db2 "$REPO"; do
    as "$h" postgres env BF_HA_MEMBER="$h" "$FS/$h/usr/local/lib/bf-ha/bf-ha-metrics.sh" --stdout >"$WORK/metrics-$h.prom" 2>"$LOGS/metrics-$h.log" || METRICS_OK=no
    if [[ -x /usr/bin/promtool ]] && ! /usr/bin/promtool check metrics <"$WORK/metrics-$h.prom" >>"$LOGS/metrics-$h.log" 2>&1; then METRICS_OK=no; fi
  done
  local want
  for want in "bf_ha_replication_sync_standbys{shard=\"$SHARD\",member=\"$final\"} 1" "bf_ha_archive_failed_total{shard=\"$SHARD\",member=\"$final\"} " \
    "bf_ha_pg_in_recovery{shard=\"$SHARD\",member=\"$( [[ $final == db1 ]] && echo db2 || echo db1)\"} 1" \
    "bf_ha_backup_last_completion_timestamp_seconds{shard=\"$SHARD\",member=\"$REPO\",type=\"full\"} " "bf_ha_backup_info_ok{shard=\"$SHARD\",member=\"$REPO\"} 1"; do
    grep -qF "$want" "$WORK"/metrics-*.prom || { METRICS_OK=no; say "    missing: $want"; }
  done
  say "    $(grep -hE '^bf_ha_(replication_sync_standbys|archive_failed_total|backup_last_completion)' "$WORK"/metrics-*.prom | paste -sd ';' -) (promtool check metrics: $([[ -x /usr/bin/promtool ]] && echo run || echo 'not installed'))"
  summary "$total0"
}

field() { # phase field: from verify.out's RESULT lines
  node -e '
    const [file, phase, field] = process.argv.slice(1);
    const line = require("fs").readFileSync(file, "utf8").split("\n").find((l) => l.startsWith(`RESULT ${phase} `));
    const v = line ? JSON.parse(line.slice(`RESULT ${phase} `.length))[field] : undefined;
    console.log(v === undefined || v === null ? "?" : v);
  ' "$WORK/verify.out" "$1" "$2"
}

summary() {
  local total=$(($(now_ms) - $1))
  local lost multi restore_ok crash_ms switch_failed
  lost=$(field writes lost) multi=$(field probes two_writable_rounds) restore_ok=$(field restore ok)
  crash_ms=$(field phase:crash first_ack_on_new_node_ms) switch_failed=$(field phase:switchover failed)
  say "================================ SUMMARY ================================"
  say "setup     etcd x3 healthy $(secs "${T[etcd]}") s; shard $SHARD bootstrapped on $PRIMARY $(secs "${T[bootstrap]}") s; $STANDBY synchronous standby $(secs "${T[standby]}") s; stanza + check $(secs "${T[stanza]}") s; full backup $(secs "${T[backup]}") s"
  say "crash     kill -9 of $PRIMARY's postmaster: $STANDBY accepted writes after $(secs "$crash_ms") s; $(field phase:crash failed) writes failed; longest write gap $(field phase:crash longest_write_gap_ms) ms"
  say "rejoin    $PRIMARY back as synchronous standby after $(secs "${T[rejoin]}") s (pg_rewind: $REWIND_A)"
  say "switch    patronictl switchover $STANDBY -> $PRIMARY: writes on $PRIMARY after $(secs "$(field phase:switchover first_ack_on_new_node_ms)") s; $switch_failed writes failed; longest write gap $(field phase:switchover longest_write_gap_ms) ms"
  say "standby   $STANDBY cut off for ${STANDBY_CUT_S} s: writes on $PRIMARY stalled $(secs "$(field phase:standby_cut longest_write_gap_ms)") s at most, then went on alone ($(field phase:standby_cut acked) acknowledged during the cut, $(field phase:standby_cut failed) failed); synchronous again $(secs "${T[standby_back]}") s after the link came back"
  say "server    $PRIMARY lost (link down, all processes killed): $STANDBY accepted writes after $(secs "$(field phase:server_lost first_ack_on_new_node_ms)") s; $(field phase:server_lost failed) writes failed; $PRIMARY back as synchronous standby $(secs "${T[server_back]}") s after power-on (pg_rewind: $REWIND_E)"
  say "writes    $(field writes acked) acknowledged, $(field writes failed) failed ($(field writes failed_but_committed) of them committed anyway), $lost acknowledged rows lost"
  say "probes    $(field probes rounds) rounds (every $(field probes interval_p50_ms) ms, longest interval $(field probes interval_max_ms) ms): at most $(field probes max_writable) writable node per round, $multi rounds with two, $(field probes no_writable_rounds) with none"
  say "restore   PITR to the target: $(field restore acked_before_target) rows acknowledged before it, $(field restore missing) missing; $(field restore sent_after_target) sent after it, $(field restore present_after_target) present; restored in $(secs "${T[restore]}") s"
  say "metrics   bf-ha-metrics.sh output for the alerts: ${METRICS_OK}"
  say "total     $(secs "$total") s"
  if [[ $lost == 0 && $multi == 0 && $restore_ok == true && $crash_ms != '?' && $METRICS_OK == yes ]]; then
    say "RESULT PASS acked_lost=0 two_writable_rounds=0 restore_ok=yes failover_s=$(secs "$crash_ms") switchover_failed_writes=$switch_failed"
  else
    say "RESULT FAIL acked_lost=$lost two_writable_rounds=$multi restore_ok=$restore_ok failover_ms=$crash_ms metrics_ok=$METRICS_OK (logs in ${LOGS#"$ROOT"/})"
    exit 1
  fi
}

main
