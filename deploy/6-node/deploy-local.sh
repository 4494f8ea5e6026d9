#!/usr/bin/env bash
# deploy/6-node on one machine: six Linux network namespaces stand in for the six
# servers of topology.json (bf-app1..3, bf-db1..3 on a bridge, each with its own
# address), and everything runs from the release, as an operator ships it:
#   `npm run release` builds bf-engine-<version>.tgz; it is unpacked on every app server
#   into /opt/bf-engine-<version>, /opt/bf-engine pointing at it (here: under
#   .stack/deploy/<host>/opt); the checkout's sources are not used by any server;
#   the database tier as ha/ describes it: etcd on db1..db3, every shard a Patroni
#   cluster of a primary and a synchronous standby on two db hosts (placement.json),
#   pgBackRest archiving WAL and taking backups to its repository on app3; every file
#   rendered by ha/render.mjs, every service started as its unit says;
#   engine.env.example rendered once (secrets filled in, PG_SHARDS naming both hosts of
#   every shard) and used by all app servers; migrate-cli from app1's release; redis +
#   bf-engine (+ the simulators on app1) started with the ExecStart, EnvironmentFile and
#   WorkingDirectory of the units it carries.
# Then: a smoke load through all three app servers, (full run) a rolling restart of the
# app servers under load (no request may fail), and under a steady load of checkouts
# and card payments that records every answer the engine acknowledged:
#   a. kill -9 of shard 1's primary (its postmaster): Patroni promotes the standby, the
#      engine follows it; the old primary comes back as a standby (pg_rewind);
#   b. db1's network link cut (shard 0's primary, shard 2's standby): shard 0 fails over,
#      shard 2 goes on without its standby; the link back, db1 rejoins both;
#   c. planned switchovers that put every shard back where placement.json wants it;
#   d. a restore drill: shard 1 restored to a moment during the load on a scratch
#      instance, checked against its own invariants and the live shard;
# judged by: every order and payment acknowledged (2xx) present and identical, none
# duplicated, ledger and stock balanced, never two writable nodes of one shard in any
# probe round (every 150 ms), seconds until each shard answered again, 503s meanwhile.
# Everything it starts it stops, and removes the namespaces and the bridge, on any exit
# (success, failure, Ctrl-C, SIGTERM; a run killed with SIGKILL is cleaned by the next).
#
# usage: deploy/6-node/deploy-local.sh [--quick] [--rolling]
#   --quick       a shorter smoke load and no rolling restart (the test suite uses it)
#   --rolling     the RUNBOOK's rolling restart under load, also with --quick
# exit:  0 proven, 1 a check failed, 2 usage, 75 another run holds the lock,
#        77 SKIPPED: this machine cannot run it (not root, no network namespaces,
#        packages missing and not installable); the reason is printed.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$ROOT/.stack/deploy            # git-ignored (.stack/)
FS=$WORK/fs                         # the db hosts' and app3's HA files: FS/<host>/etc/..., FS/<host>/var/lib/...
REC=$WORK/record                    # what the load generator was told, answer by answer
REL=                                # the release as built, on the operator's side (set by build_release)
REL_TGZ=                            # its tarball, what the app servers get
DEPLOY=                             # $REL/deploy/6-node: the files below come from the release
LOGS=$WORK/logs
EX_SKIP=77
SAY_PREFIX=deploy:local
NS_PREFIX=bf-
BRIDGE=bf-br0
LOCK=/run/lock/bf-deploy-local.lock
[[ -w /run/lock ]] || LOCK=/tmp/bf-deploy-local.lock
PG_BIN=/usr/lib/postgresql/15/bin   # the HA templates name PostgreSQL 15, as topology.json does
# shellcheck source=lib/hosts.sh
. "$ROOT/deploy/6-node/lib/hosts.sh"
# shellcheck source=lib/ha.sh
. "$ROOT/deploy/6-node/lib/ha.sh"

QUICK=0 ROLLING=
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --rolling) ROLLING=1 ;;
    -h|--help) sed -n '2,/^set -E/{/^#/p}' "$0"; exit 0 ;;
    *) echo "deploy:local: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Sizes of the proof (this box has 2 cores; topology.json describes 8-core app servers).
LOCAL_WORKERS=2
if ((QUICK)); then SMOKE_REQUESTS=300; else SMOKE_REQUESTS=1500; fi
[[ -n $ROLLING ]] || ROLLING=$((1 - QUICK))
CRASH_SHARD=1                       # a. its primary's postmaster is killed
CUT_HOST=db1                        # b. its link is cut: a primary and a standby of two other shards
DRILL_SHARD=1                       # d. restored to a moment during the load
SCRATCH_PORT=5439                   #    on a db host that does not hold it, beside its two shards

T_START=$(date +%s%3N)
declare -A PIDS=()                  # name -> pid of every long-running process we started (engines, redis, simulators, probes)
declare -A HA_PIDS=()               # etcd, Patroni, pgBackRest servers: killed on purpose by the proof, not watched
declare -A TIMING=() ADDR=()
declare -a SHARD_PORT=() SHARD_REST=() SHARD_HOME=() SHARD_PAIR=() SWITCHED=()
declare -a ETCD_MEMBERS=()
CLEANING=0

# ---- preflight: can this machine do it at all? (exit 77 = skipped, said clearly) ------

preflight() {
  need_root_and tar node
  NODE=$(command -v node)   # the probes' Node, wherever it is installed (an empty environment has no PATH to it)
  mkdir -p "$LOGS"
  ha_install_packages
  id postgres >/dev/null 2>&1 || skip "no 'postgres' system user to run PostgreSQL as"
  REDIS_SERVER=$(command -v redis-server || true)
  [[ -n $REDIS_SERVER ]] || skip "redis-server not found (apt-get install redis-server)"
  # The release tool, and the probes that stand in for clients and the load balancer.
  [[ -f $ROOT/dist/tools/build/release.js && -f $ROOT/dist/tools/fleet-probe/main.js ]] || fail "dist/ is not built: run npm run build first"
  [[ -d $ROOT/node_modules/pg ]] || fail "node_modules/pg is missing: run npm install first"
}

# ---- the topology, read by the same parser deploy:check uses ------------------------

read_topology() {
  local file=$1
  eval "$(cd "$REL" && node --input-type=module -e '
    import { loadTopology } from "./dist/tools/ops/topology.js";
    import { readFileSync } from "node:fs";
    const t = loadTopology(process.argv[1]);
    const raw = JSON.parse(readFileSync(process.argv[1], "utf8"));
    const q = (a) => "(" + a.map((x) => JSON.stringify(String(x))).join(" ") + ")";
    console.log(`APP_NAMES=${q(t.apps.map((a) => a.name))} APP_ADDRS=${q(t.apps.map((a) => a.address))}`);
    console.log(`DB_NAMES=${q(t.dbs.map((d) => d.name))} DB_ADDRS=${q(t.dbs.map((d) => d.address))}`);
    console.log(`PG_PORT=${t.postgres.port} PG_DB=${t.postgres.database} PG_USER=${t.postgres.user} REDIS_PORT=${t.redis.port} ENGINE_PORT=${t.engine.port}`);
    console.log(`SIM_HOST=${t.simulators?.host ?? ""} GATEWAY_PORT=${t.simulators?.gateway_port ?? 0} PROVIDER_PORT=${t.simulators?.provider_port ?? 0}`);
    console.log(`CIDR=${raw.network?.cidr ?? ""}`);
  ' "$file")"
  local i
  for i in "${!APP_NAMES[@]}"; do ADDR[${APP_NAMES[$i]}]=${APP_ADDRS[$i]}; done
  for i in "${!DB_NAMES[@]}"; do ADDR[${DB_NAMES[$i]}]=${DB_ADDRS[$i]}; done
}

check_network() {
  [[ $CIDR =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)\.0/24$ ]] || fail "network.cidr must be an a.b.c.0/24 network for the proof (got '$CIDR')"
  local a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
  # Only private addresses: the proof's traffic must never leave the machine.
  if ! { ((a == 10)) || ((a == 172 && b >= 16 && b <= 31)) || ((a == 192 && b == 168)); }; then
    fail "network.cidr $CIDR is not a private (RFC 1918) network"
  fi
  BRIDGE_ADDR="${CIDR%.0/24}.1"
  local h
  for h in "${APP_ADDRS[@]}" "${DB_ADDRS[@]}"; do
    [[ ${h%.*} == "${CIDR%.0/24}" ]] || fail "host address $h is outside $CIDR"
    [[ $h != "$BRIDGE_ADDR" ]] || fail "$BRIDGE_ADDR is the proof's bridge address; no host may use it"
  done
  if ip -4 route show "$CIDR" | grep -qv "dev $BRIDGE"; then
    fail "$CIDR is already routed on this machine ($(ip -4 route show "$CIDR")); pick another network.cidr"
  fi
}

# ---- cleanup: every exit path ends here ------------------------------------------------

cleanup() {
  local rc=$?
  ((CLEANING)) && return
  CLEANING=1
  trap '' PIPE INT TERM
  set +e
  ha_policy_release
  say "cleanup: stopping everything this run started (exit $rc)" 2>/dev/null
  [[ -n $FG_PID ]] && kill -TERM "$FG_PID" 2>/dev/null
  touch "$REC/stop" 2>/dev/null
  local name
  local -a jobs=()
  # Engines first (they drain), then Redis, the simulators and the probes; the database
  # tier's processes go with their namespaces (nothing of them is kept).
  for name in "${!PIDS[@]}"; do [[ $name == engine-* ]] || continue; stop_pid "$name" "${PIDS[$name]}" 25 & jobs+=($!); done
  ((${#jobs[@]})) && wait "${jobs[@]}" 2>/dev/null
  jobs=()
  for name in "${!PIDS[@]}"; do [[ $name == engine-* ]] && continue; stop_pid "$name" "${PIDS[$name]}" 5 & jobs+=($!); done
  ((${#jobs[@]})) && wait "${jobs[@]}" 2>/dev/null
  for name in "${!HA_PIDS[@]}"; do kill -KILL "${HA_PIDS[$name]}" 2>/dev/null; done
  teardown_network
  rm -rf "$FS" "$WORK/tls" "$WORK/secrets.env" "$WORK"/*/opt
  if network_left; then
    say "cleanup: WARNING: namespaces or $BRIDGE still present; run this script again to clear them" 2>/dev/null
  else
    say "cleanup: done (namespaces, veths and $BRIDGE removed; logs kept in ${LOGS#"$ROOT"/})" 2>/dev/null
  fi
  exit "$rc"
}

# ---- files: render the templates the way an operator would fill them in ------------------

render() { # template out: replace CHANGE_ME_ tokens; refuse to leave one behind
  local tmpl=$1 out=$2 k
  local -a expr=()
  for k in "${!FILL[@]}"; do expr+=(-e "s|CHANGE_ME_$k|${FILL[$k]}|g"); done
  sed "${expr[@]}" "$tmpl" >"$out"
  if grep -nv '^[[:space:]]*#' "$out" | grep 'CHANGE_ME_' >&2; then fail "$out still has CHANGE_ME_ placeholders"; fi
}

render_files() {
  local sim_addr app1
  sim_addr=${ADDR[$SIM_HOST]} app1=${APP_ADDRS[0]}
  # No load balancer in the proof: app1 stands in for the public URL the gateway calls back.
  declare -gA FILL=(
    [PG_PASSWORD]=$(secret) [REDIS_PASSWORD]=$(secret) [ADMIN_PASSWORD]=$(secret)
    [ADMIN_EMAIL]=admin@deploy-local.test
    [ENGINE_PUBLIC_URL]=http://$app1:$ENGINE_PORT
    [GATEWAY_URL]=http://$sim_addr:$GATEWAY_PORT [PROVIDER_URL]=http://$sim_addr:$PROVIDER_PORT
    [GATEWAY_API_KEY]=gw_$(secret) [GATEWAY_WEBHOOK_SECRET]=whsec_$(secret) [PROVIDER_API_KEY]=pv_$(secret)
  )
  # The one deviation from topology.json: this box has 2 cores, the app servers 8.
  node --input-type=module -e '
    import { readFileSync, writeFileSync } from "node:fs";
    import path from "node:path";
    const [src, out, workers] = process.argv.slice(1);
    const t = JSON.parse(readFileSync(src, "utf8"));
    const abs = (p) => path.resolve(path.dirname(src), p);
    t.engine.workers_per_app_server = Number(workers);
    for (const o of [t.engine, t.postgres, t.redis, t.simulators]) for (const k of ["env_file", "systemd_unit", "config", "hba", "placement"]) if (o?.[k]) o[k] = abs(o[k]);
    writeFileSync(out, JSON.stringify(t, null, 2));
  ' "$DEPLOY/topology.json" "$WORK/topology.local.json" "$LOCAL_WORKERS"
  render "$DEPLOY/engine.env.example" "$WORK/engine.env"
  sed -i "s/^WORKERS=.*/WORKERS=$LOCAL_WORKERS/" "$WORK/engine.env"
  # A second deviation, from engine.env.example: the probe registers every customer from
  # one address (the root namespace's), where a storefront's customers come from many.
  sed -i "s/^REGISTER_MAX_ADDRESS=.*/REGISTER_MAX_ADDRESS=1000000/" "$WORK/engine.env"
  local i name
  for i in "${!APP_NAMES[@]}"; do
    name=${APP_NAMES[$i]}
    mkdir -p "$WORK/$name/redis"
    FILL[PRIVATE_ADDRESS]=${APP_ADDRS[$i]}
    render "$DEPLOY/redis/bf-redis.conf" "$WORK/$name/redis.conf"
    chown -R nobody:nogroup "$WORK/$name/redis"
  done
  unset 'FILL[PRIVATE_ADDRESS]'
  render "$DEPLOY/sim.env.example" "$WORK/$SIM_HOST/sim.env"
  # The database tier's secrets (ha/secrets.env.example): the engine's password is the one above.
  umask 077
  cat >"$WORK/secrets.env" <<SECRETS
PG_PASSWORD=${FILL[PG_PASSWORD]}
PG_REPLICATION_PASSWORD=$(secret)
PG_REWIND_PASSWORD=$(secret)
PATRONI_API_PASSWORD=$(secret)
PGBACKREST_CIPHER_PASS=$(secret)
SECRETS
  umask 022
  # The one deviation from the database files: this machine is not a 64 GB database
  # box, and six PostgreSQL instances share it with other work.
  cat >"$WORK/local.conf" <<'CONF'
# deploy-local.sh only: sizes for a shared development machine.
shared_buffers = 64MB
effective_cache_size = 256MB
maintenance_work_mem = 32MB
autovacuum_work_mem = 16MB
wal_buffers = 4MB
max_wal_size = 256MB
min_wal_size = 64MB
huge_pages = off
CONF
}

# The engine's PG_SHARDS as the HA layer renders it (both hosts of every shard), in the
# one engine.env every app server gets; secrets readable by root only, which hands them
# to the services (and redis.conf by the unprivileged Redis too).
install_engine_env() {
  local line name
  line=$(cat "$FS/engine.env.PG_SHARDS")
  grep -q '^PG_SHARDS=' "$WORK/engine.env" || fail "engine.env.example has no PG_SHARDS line"
  awk -v l="$line" '/^PG_SHARDS=/ { print l; next } { print }' "$WORK/engine.env" >"$WORK/engine.env.new" && mv "$WORK/engine.env.new" "$WORK/engine.env"
  for name in "${APP_NAMES[@]}"; do cp "$WORK/engine.env" "$WORK/$name/engine.env"; done   # the same file on every app server
  chmod 0600 "$WORK/engine.env" "$WORK"/*/engine.env "$WORK/$SIM_HOST/sim.env"
  chown root:nogroup "$WORK"/*/redis.conf
  chmod 0640 "$WORK"/*/redis.conf
  PG_SHARDS=${line#PG_SHARDS=}
}

# ---- the release: built once, unpacked on every app server ----------------------------------

build_release() { # npm run release into $WORK/release: the operator's copy, and the tarball shipped
  local base
  base=$(node -p 'const p = require(process.argv[1]); `${p.name}-${p.version}`' "$ROOT/package.json")
  say "0. the release: npm run release -> ${WORK#"$ROOT"/}/release/$base/ and $base.tgz (no server runs anything from the checkout; only the probes do)"
  indented node "$ROOT/dist/tools/build/release.js" --out "$WORK/release/$base" || fail "npm run release failed"
  REL=$WORK/release/$base REL_TGZ=$WORK/release/$base.tgz REL_BASE=$base DEPLOY=$WORK/release/$base/deploy/6-node
}

install_release() { # host: the tarball unpacked into its /opt, /opt/bf-engine -> that version (RUNBOOK.md)
  local opt=$WORK/$1/opt
  rm -rf "$opt"
  mkdir -p "$opt"
  tar -xzf "$REL_TGZ" -C "$opt" || return 1
  ln -sfn "$REL_BASE" "$opt/bf-engine"
}

# ---- services, started as their systemd units say -------------------------------------------

unit_get() { sed -n "s/^$2=//p" "$1"; }

map_path() { # production path -> where the proof keeps it, for host $2
  case $1 in
    /opt/bf-engine) echo "$WORK/$2/opt/bf-engine" ;;
    /opt/bf-engine/*) echo "$WORK/$2/opt/bf-engine/${1#/opt/bf-engine/}" ;;
    /etc/bf-engine/*) echo "$WORK/$2/${1#/etc/bf-engine/}" ;;
    /var/lib/bf-redis) echo "$WORK/$2/redis" ;;
    /usr/bin/node) command -v node ;;
    /usr/bin/redis-server) echo "$REDIS_SERVER" ;;
    *) echo "$1" ;;
  esac
}

# Runs ExecStart of a unit, as the release installed on that host carries it, inside the
# host's namespace: its WorkingDirectory, its EnvironmentFile and Environment= lines in
# an otherwise empty environment, as an unprivileged user (the units say bf-engine /
# redis; here: nobody).
start_unit() { # host unit key
  local host=$1 unit key=$3 word line wd envf
  unit=$(map_path /opt/bf-engine/deploy/6-node/systemd/$2 "$host")
  local -a argv=() vars=()
  for word in $(unit_get "$unit" ExecStart); do argv+=("$(map_path "$word" "$host")"); done
  wd=$(unit_get "$unit" WorkingDirectory) envf=$(unit_get "$unit" EnvironmentFile)
  if [[ -n $envf ]]; then
    while IFS= read -r line; do [[ $line =~ ^[A-Z][A-Z0-9_]*= ]] && vars+=("$line"); done <"$(map_path "$envf" "$host")"
  fi
  while IFS= read -r line; do [[ -n $line ]] && vars+=("$line"); done < <(unit_get "$unit" Environment)
  (
    cd "$(map_path "${wd:-/}" "$host")"
    exec setsid ip netns exec "$NS_PREFIX$host" setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
      env -i PATH=/usr/local/bin:/usr/bin:/bin "${vars[@]}" "${argv[@]}"
  ) >>"$LOGS/$host-$key.log" 2>&1 </dev/null 9>&- &
  PIDS[$key-$host]=$!
}

wait_http() { # timeout_ms url... : every URL answers 200
  local timeout=$1; shift
  node --input-type=module -e '
    const [timeout, ...urls] = process.argv.slice(1);
    const deadline = Date.now() + Number(timeout);
    const ok = async (u) => { try { return (await fetch(u, { signal: AbortSignal.timeout(2000) })).status === 200; } catch { return false; } };
    let pending = urls;
    while (pending.length && Date.now() < deadline) {
      const res = await Promise.all(pending.map(ok));
      pending = pending.filter((_, i) => !res[i]);
      if (pending.length) await new Promise((r) => setTimeout(r, 200));
    }
    if (pending.length) { console.error("not ready: " + pending.join(" ")); process.exit(1); }
  ' "$timeout" "$@"
}

assert_alive() {
  local key
  for key in "${!PIDS[@]}"; do
    alive "${PIDS[$key]}" || { tail -n 20 "$LOGS/${key#*-}-${key%%-*}.log" >&2 || true; fail "$key exited early (log above)"; }
  done
}

in_app1() { # run a tool on app1 with the engine's environment, like an operator would
  local -a vars=() line
  while IFS= read -r line; do [[ $line =~ ^[A-Z][A-Z0-9_]*= ]] && vars+=("$line"); done <"$WORK/${APP_NAMES[0]}/engine.env"
  (cd "$(map_path /opt/bf-engine "${APP_NAMES[0]}")" && ip netns exec "$NS_PREFIX${APP_NAMES[0]}" setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
    env -i PATH=/usr/local/bin:/usr/bin:/bin "${vars[@]}" "$@")
}

result_field() { # file phase field
  node --input-type=module -e '
    import { readFileSync } from "node:fs";
    const [file, phase, field] = process.argv.slice(1);
    const line = readFileSync(file, "utf8").split("\n").find((l) => l.startsWith(`RESULT ${phase} `));
    const v = line ? JSON.parse(line.slice(`RESULT ${phase} `.length))[field] : undefined;
    console.log(v === undefined ? "?" : typeof v === "object" ? JSON.stringify(v) : v);
  ' "$1" "$2" "$3"
}

probe() { # phase [label] args...: fleet-probe from the root namespace, over the bridge
  local phase=$1 out=$WORK/probe-$1.out rc=0
  shift
  if [[ ${1:-} != --* ]]; then out=$WORK/probe-$phase-$1.out; shift; fi
  run_fg node "$ROOT/dist/tools/fleet-probe/main.js" "$phase" "$@" --state "$WORK/state.json" >"$out" 2>&1 || rc=$?
  sed 's/^/    /' "$out"
  return "$rc"
}

# ---- the database tier: etcd, a Patroni cluster per shard, pgBackRest ------------------------

start_database_tier() {
  local h s t
  ha_render "$WORK/secrets.env" "$WORK/local.conf"
  t=$(now_ms)
  for h in "${ETCD_MEMBERS[@]}"; do start_etcd "$h"; done
  wait_until 60 "etcd healthy on ${ETCD_MEMBERS[*]}" etcd_healthy
  TIMING[etcd]=$(($(now_ms) - t))
  for h in "${ETCD_MEMBERS[@]}" "$REPO"; do start_pgbr_server "$h"; done
  t=$(now_ms)
  for s in "${!SHARD_HOME[@]}"; do start_patroni "${SHARD_HOME[$s]}" "$s"; done
  for s in "${!SHARD_HOME[@]}"; do wait_until 120 "shard $s bootstrapped on ${SHARD_HOME[$s]}" is_primary "$s" "${SHARD_HOME[$s]}"; done
  TIMING[bootstrap]=$(($(now_ms) - t))
  t=$(now_ms)
  for s in "${!SHARD_HOME[@]}"; do start_patroni "$(other_node "$s" "${SHARD_HOME[$s]}")" "$s"; done
  for s in "${!SHARD_HOME[@]}"; do
    h=$(other_node "$s" "${SHARD_HOME[$s]}")
    wait_until 180 "shard $s: $h a synchronous standby" is_sync "$s" "$h"
  done
  TIMING[standbys]=$(($(now_ms) - t))
  for s in "${!SHARD_HOME[@]}"; do say "    shard $s :${SHARD_PORT[$s]}: $(cluster_line "$s")"; done
  say "    on ${SHARD_HOME[0]} (shard 0): $(ha_sql 0 "${SHARD_HOME[0]}" "SELECT 'synchronous_commit=' || current_setting('synchronous_commit') || ' synchronous_standby_names=' || current_setting('synchronous_standby_names') || ' archive_mode=' || current_setting('archive_mode') || ' max_connections=' || current_setting('max_connections') || ' data_checksums=' || current_setting('data_checksums')")"
}

backups() { # stanza-create, check (WAL reaches the repository), a full backup of every shard
  local s stanza t
  t=$(now_ms)
  for s in "${!SHARD_HOME[@]}"; do
    stanza=bf-shard$s
    { as "$REPO" postgres pgbackrest --stanza="$stanza" stanza-create && as "$REPO" postgres pgbackrest --stanza="$stanza" check; } >>"$LOGS/pgbr-stanza.log" 2>&1 ||
      fail "pgBackRest stanza $stanza: $(tail -n 5 "$LOGS/pgbr-stanza.log")"
    as "$REPO" postgres pgbackrest --stanza="$stanza" --type=full --log-level-console=info backup >"$LOGS/pgbr-backup-$s.log" 2>&1 ||
      fail "the full backup of $stanza failed: $(tail -n 5 "$LOGS/pgbr-backup-$s.log")"
    say "    $stanza: $(as "$REPO" postgres pgbackrest --stanza="$stanza" info 2>&1 | grep -E 'full backup|wal archive min/max' | tr -s ' ' | paste -sd ';' -)"
  done
  TIMING[backups]=$(($(now_ms) - t))
}

# ---- the load that records, and the split-brain watch ------------------------------------------

mark() { echo "$1 $2 ${3:-$(now_ms)}" >>"$REC/marks"; }   # BEGIN|END name [epoch_ms], SHARD name shard

rec_status() { [[ -f $REC/status ]] && . "$REC/status"; }
took_writes_since() { # shard epoch_ms: the load got a 2xx write on that shard after then
  rec_status || return 1
  local v=LAST_OK_MS_$1
  ((${!v:-0} > $2))
}
writing_on() { [[ $(leader_of "$1") == "$2" ]] && took_writes_since "$1" "$3"; }   # shard host since_ms

start_recorded_load() {
  local s n spec=""
  rm -rf "$REC"
  mkdir -p "$REC"
  for s in "${!SHARD_PAIR[@]}"; do
    spec+="$s:"
    for n in ${SHARD_PAIR[$s]}; do spec+="$n=${ADDR[$n]}:${SHARD_PORT[$s]},"; done
    spec="${spec%,};"
  done
  # From app1 (pg_hba lets the app servers in), as the engine's role.
  (exec setsid ip netns exec "${NS_PREFIX}${APP_NAMES[0]}" env -i PATH=/usr/bin:/bin "$NODE" "$ROOT/deploy/6-node/ha/ha-probe.mjs" watch \
    --shards "$spec" --user "$PG_USER" --password "${FILL[PG_PASSWORD]}" --db "$PG_DB" \
    --events "$REC/writable.jsonl" --status "$REC/writable.status" --stop-file "$REC/stop" --probe-ms 150) >>"$LOGS/ha-probe.log" 2>&1 </dev/null 9>&- &
  PIDS[probe-watch]=$!
  node "$ROOT/dist/tools/fleet-probe/main.js" record --state "$WORK/state.json" --out "$REC" --stop-file "$REC/stop" \
    --gateway "http://${ADDR[$SIM_HOST]}:$GATEWAY_PORT" --concurrency 6 --max-ms 900000 >"$WORK/probe-record.out" 2>&1 </dev/null 9>&- &
  PIDS[probe-record]=$!
  local t; t=$(now_ms)
  for s in "${!SHARD_PAIR[@]}"; do wait_until 60 "the load's first writes on shard $s" took_writes_since "$s" "$t"; done
  rec_status
  say "    writes acknowledged so far: ${OK_TOTAL:-?}; split-brain watch: $(cat "$REC/writable.status" 2>/dev/null)"
}

stop_recorded_load() {
  touch "$REC/stop"
  local key
  for key in probe-record probe-watch; do
    wait_until 90 "$key stopped" bash -c "! kill -0 ${PIDS[$key]} 2>/dev/null"
    wait "${PIDS[$key]}" 2>/dev/null || true
    unset "PIDS[$key]"
  done
  sed 's/^/    /' "$WORK/probe-record.out" | tail -n 5
}

# ---- a. the primary's postmaster killed ---------------------------------------------------------

crash_primary() {
  local s=$CRASH_SHARD old new pm lines t
  old=$(leader_of "$s")
  [[ -n $old ]] || fail "shard $s has no single primary before the crash"
  new=$(other_node "$s" "$old") pm=$(postmaster_pid "$s" "$old") lines=$(patroni_log_lines "$s" "$old")
  say "a. kill -9 of shard $s's primary postmaster ($old:${SHARD_PORT[$s]}, pid $pm) under load"
  t=$(now_ms); mark BEGIN crash "$t"; mark SHARD crash "$s"
  kill -KILL "$pm"
  wait_until 90 "shard $s taking writes on $new after the kill" writing_on "$s" "$new" "$t"
  TIMING[crash]=$(($(now_ms) - t))
  sleep 2; mark END crash
  say "    $new promoted; the load's writes on shard $s succeeded again ~$(secs "${TIMING[crash]}") after the kill (exact figures below)"
  t=$(now_ms)
  wait_until 180 "$old back as shard $s's synchronous standby" is_sync "$s" "$old"
  TIMING[crash_rejoin]=$(($(now_ms) - t)) REWIND_CRASH=$(rewound "$s" "$old" "$lines")
  say "    $old rejoined as the synchronous standby $(secs "${TIMING[crash_rejoin]}") later (pg_rewind: $REWIND_CRASH)"
}

# ---- b. a db server's link cut: it holds one shard's primary and another's standby ----------------

cut_link() {
  local h=$CUT_HOST s t prim=() stby=()
  declare -A lines=()
  for s in $(shards_of "$h"); do
    if [[ $(leader_of "$s") == "$h" ]]; then prim+=("$s"); else stby+=("$s"); fi
    lines[$s]=$(patroni_log_lines "$s" "$h")
  done
  ((${#prim[@]} == 1 && ${#stby[@]} == 1)) || fail "$h should hold one primary and one standby (primaries: ${prim[*]}, standbys: ${stby[*]})"
  say "b. $h's network link cut (no FIN, no RST): shard ${prim[0]}'s primary and shard ${stby[0]}'s synchronous standby are on it"
  t=$(now_ms)
  mark BEGIN cut "$t"; mark SHARD cut "${prim[0]}"; mark BEGIN cut_standby "$t"; mark SHARD cut_standby "${stby[0]}"
  link_down "$h"
  wait_until 120 "shard ${prim[0]} taking writes on $(other_node "${prim[0]}" "$h") after the cut" writing_on "${prim[0]}" "$(other_node "${prim[0]}" "$h")" "$t"
  TIMING[cut_failover]=$(($(now_ms) - t))
  wait_until 120 "shard ${stby[0]} taking writes without its standby" took_writes_since "${stby[0]}" "$((t + 1000))"
  TIMING[cut_alone]=$(($(now_ms) - t))
  sleep 2; mark END cut; mark END cut_standby
  say "    shard ${prim[0]}: $(other_node "${prim[0]}" "$h") promoted, writes again ~$(secs "${TIMING[cut_failover]}") after the cut; shard ${stby[0]}: writes went on without the standby after ~$(secs "${TIMING[cut_alone]}")"
  t=$(now_ms)
  link_up "$h"
  for s in "${prim[0]}" "${stby[0]}"; do wait_until 180 "$h back as shard $s's synchronous standby" is_sync "$s" "$h"; done
  TIMING[cut_rejoin]=$(($(now_ms) - t)) REWIND_CUT=$(rewound "${prim[0]}" "$h" "${lines[${prim[0]}]}")
  CUT_PRIMARY_SHARD=${prim[0]} CUT_STANDBY_SHARD=${stby[0]}
  say "    link back: $h the synchronous standby of shards ${prim[0]} and ${stby[0]} $(secs "${TIMING[cut_rejoin]}") later (shard ${prim[0]}'s old primary rewound: $REWIND_CUT)"
}

# ---- c. planned switchovers: every shard back where placement.json puts it ------------------------

switch_home() {
  local s leader home t
  SWITCHED=()
  for s in "${!SHARD_HOME[@]}"; do
    leader=$(leader_of "$s") home=${SHARD_HOME[$s]}
    [[ $leader == "$home" ]] && continue
    say "c. planned switchover of shard $s under load: patronictl switchover --leader $leader --candidate $home --force"
    t=$(now_ms); mark BEGIN "switchover$s" "$t"; mark SHARD "switchover$s" "$s"
    patronictl "$s" "$home" switchover --leader "$leader" --candidate "$home" --force >>"$LOGS/switchover.log" 2>&1 ||
      fail "patronictl switchover of shard $s failed: $(tail -n 5 "$LOGS/switchover.log")"
    wait_until 90 "shard $s taking writes on $home after the switchover" writing_on "$s" "$home" "$t"
    TIMING[switchover$s]=$(($(now_ms) - t))
    wait_until 180 "$leader shard $s's synchronous standby after the switchover" is_sync "$s" "$leader"
    mark END "switchover$s"
    SWITCHED+=("$s")
    say "    $home primary of shard $s again (writes ~$(secs "${TIMING[switchover$s]}") after the command), $leader its synchronous standby"
  done
  for s in "${!SHARD_HOME[@]}"; do is_home "$s" || fail "shard $s is not as placed after the switchovers: $(cluster_line "$s")"; done
}

# ---- judging ---------------------------------------------------------------------------------------

verify_records() { # every acknowledged order and payment, from app1 (pg_hba lets the app servers in)
  local rc=0
  ip netns exec "${NS_PREFIX}${APP_NAMES[0]}" env -i PATH=/usr/bin:/bin "$NODE" "$ROOT/dist/tools/fleet-probe/main.js" ha-verify \
    --state "$WORK/state.json" --records "$REC" --marks "$REC/marks" --pg-shards "$PG_SHARDS" >"$WORK/probe-ha-verify.out" 2>&1 || rc=$?
  sed 's/^/    /' "$WORK/probe-ha-verify.out"
  node "$ROOT/deploy/6-node/ha/ha-probe.mjs" rounds --events "$REC/writable.jsonl" >"$WORK/probe-rounds.out" 2>&1 || rc=1
  sed 's/^/    /' "$WORK/probe-rounds.out"
  return "$rc"
}

ha_metrics() { # bf-ha-metrics.sh (bf-ha-metrics.timer) on every db host and the repository: what the alerts read
  local h s want leader
  METRICS_OK=yes
  for h in "${ETCD_MEMBERS[@]}" "$REPO"; do
    as "$h" postgres env BF_HA_MEMBER="$h" "$FS/$h/usr/local/lib/bf-ha/bf-ha-metrics.sh" --stdout >"$WORK/metrics-$h.prom" 2>"$LOGS/metrics-$h.log" || METRICS_OK=no
    if command -v promtool >/dev/null && ! promtool check metrics <"$WORK/metrics-$h.prom" >>"$LOGS/metrics-$h.log" 2>&1; then METRICS_OK=no; fi
  done
  for s in "${!SHARD_HOME[@]}"; do
    leader=${SHARD_HOME[$s]}
    for want in "bf_ha_replication_sync_standbys{shard=\"$s\",member=\"$leader\"} 1" "bf_ha_archive_failed_total{shard=\"$s\",member=\"$leader\"} " \
      "bf_ha_pg_in_recovery{shard=\"$s\",member=\"$(other_node "$s" "$leader")\"} 1" "bf_ha_backup_info_ok{shard=\"$s\",member=\"$REPO\"} 1" \
      "bf_ha_backup_last_completion_timestamp_seconds{shard=\"$s\",member=\"$REPO\",type=\"full\"} "; do
      grep -qF "$want" "$WORK"/metrics-*.prom || { METRICS_OK=no; say "    missing: $want"; }
    done
  done
  say "    $(grep -hE '^bf_ha_(replication_sync_standbys|archive_failed_total)' "$WORK"/metrics-*.prom | paste -sd ';' -) (promtool check metrics: $(command -v promtool >/dev/null && echo run || echo 'not installed'))"
}

# ---- d. the restore drill -------------------------------------------------------------------------

DRILL_HOST=db1                      # a db host that does not hold shard DRILL_SHARD (ha/RUNBOOK-HA.md)
DRILL_LINE="not run"

# ha/pgbackrest/restore-drill.sh as the runbook runs it, on DRILL_HOST as postgres, with the
# host's pgBackRest configuration and the release unpacked there for restore-check.
restore_drill() { # target_ms
  local target=$1 live rc=0
  live=$(sed 's/,postgres:/\npostgres:/g' <<<"$PG_SHARDS" | sed -n "$((DRILL_SHARD + 1))p")
  # The target is seconds old: the WAL segment holding it may not be archived yet
  # (archive_timeout is 60 s). pgBackRest's check switches and archives it now.
  as "$REPO" postgres pgbackrest --stanza="bf-shard$DRILL_SHARD" check >>"$LOGS/pgbr-stanza.log" 2>&1 ||
    { DRILL_LINE="pgbackrest check before the drill failed: $(tail -n 3 "$LOGS/pgbr-stanza.log" | tr '\n' ' ')"; return 1; }
  as "$DRILL_HOST" postgres "$FS/$DRILL_HOST/usr/local/lib/bf-ha/restore-drill.sh" --shard "$DRILL_SHARD" --target "$(pitr_time "$target")" \
    --live "$live" --dir "$FS/$DRILL_HOST/var/lib/postgresql/15/restore-shard$DRILL_SHARD" --port "$SCRATCH_PORT" --pg-bin "$PG_BIN" --wait-s 180 \
    --check "$NODE $WORK/$DRILL_HOST/opt/bf-engine/dist/tools/ops/restore-check.js" >"$WORK/restore-drill.out" 2>&1 </dev/null || rc=$?
  sed 's/^/    /' "$WORK/restore-drill.out"
  local tables
  tables=$(grep -E '^restore-check: (orders|payments|ledger_entries) ' "$WORK/restore-drill.out" | sed 's/^restore-check: //; s/ ([0-9]* ms)$//' | tr -s ' ' | paste -sd ';' -)
  DRILL_LINE="$(sed -n 's/^restore-drill: RESULT //p' "$WORK/restore-drill.out" | head -n 1) (exit $rc); $(sed -n 's/^restore-drill: \(restored in [0-9]* s, replayed and promoted in [0-9]* s\).*/\1/p' "$WORK/restore-drill.out"); $tables; invariants on the copy: $(sed -n 's/^restore-check: invariants (\([0-9]*\) always rules) on the copy: \(.*\)$/\2 (\1 rules)/p' "$WORK/restore-drill.out")"
  return "$rc"
}

# RUNBOOK.md "Rolling restart", under load: for each app server in turn, take it out of
# the balancer (here: the probe's rotation file), SIGTERM its engine (it drains), start
# it again from its unit, wait for /readyz, put it back. Zero failed requests expected.
rolling_restart() {
  local rot=$WORK/lb-out stop=$WORK/lb-stop out=$WORK/probe-load.out name i pid t0 t_stop t_ready rc=0
  rm -f "$stop"
  : >"$rot"
  node "$ROOT/dist/tools/fleet-probe/main.js" load --state "$WORK/state.json" --rotation-file "$rot" --stop-file "$stop" --max-ms 180000 >"$out" 2>&1 9>&- &
  PIDS[probe-load]=$!
  sleep 2
  for i in "${!APP_NAMES[@]}"; do
    name=${APP_NAMES[$i]}
    echo "${APP_ADDRS[$i]}:$ENGINE_PORT" >"$rot"         # 1. out of the balancer
    sleep 1                                               #    requests already sent finish
    pid=${PIDS[engine-$name]} t0=$(now_ms)
    kill -TERM "$pid"                                     # 2. systemctl restart bf-engine: SIGTERM, drain
    while alive "$pid"; do
      (($(now_ms) - t0 < 25000)) || fail "$name did not stop within 25 s of SIGTERM"
      sleep 0.1
    done
    t_stop=$(($(now_ms) - t0))
    start_unit "$name" bf-engine.service engine           # 3. start, wait for /readyz
    run_fg wait_http 60000 "http://${APP_ADDRS[$i]}:$ENGINE_PORT/readyz" || fail "$name did not come back after the restart"
    t_ready=$(($(now_ms) - t0))
    : >"$rot"                                             # 4. back in the balancer
    say "    $name: out of rotation; SIGTERM -> drained and exited in $(secs "$t_stop"); started again, /readyz 200 after $(secs "$t_ready"); back in rotation"
    sleep 1
  done
  touch "$stop"
  wait "${PIDS[probe-load]}" || rc=$?
  unset 'PIDS[probe-load]'
  sed 's/^/    /' "$out"
  return "$rc"
}

phase() { # name start_ms
  TIMING[$1]=$(($(now_ms) - $2))
  say "  ($1: $(secs "${TIMING[$1]}"))"
}

vf() { result_field "$WORK/probe-ha-verify.out" "$@"; }   # phase field, from ha-verify's RESULT lines

summary() {
  local total=$(($(now_ms) - T_START)) s=$WORK/probe-smoke.out sw
  say "================================ SUMMARY ================================"
  say "hosts    ${NS_PREFIX}${APP_NAMES[0]}..${APP_NAMES[-1]} ${APP_ADDRS[*]}, ${NS_PREFIX}${DB_NAMES[0]}..${DB_NAMES[-1]} ${DB_ADDRS[*]} (netns on $BRIDGE)"
  say "timings  release $(secs "${TIMING[release]}"), network $(secs "${TIMING[network]}"), install $(secs "${TIMING[install]}"), etcd $(secs "${TIMING[etcd]}"), 3 shards bootstrapped $(secs "${TIMING[bootstrap]}"), 3 synchronous standbys $(secs "${TIMING[standbys]}"), 3 stanzas + full backups $(secs "${TIMING[backups]}"), migrate $(secs "${TIMING[migrate]}"), app servers ready $(secs "${TIMING[start]}"), smoke $(secs "${TIMING[smoke]}")$( ((ROLLING)) && echo ", rolling restart $(secs "${TIMING[rolling]}")"), HA proof $(secs "${TIMING[ha]}"), restore drill $(secs "${TIMING[drill]}"); total $(secs "$total") before cleanup"
  say "smoke    $(result_field "$s" smoke requests) requests, $(result_field "$s" smoke unexpected) unexpected ($(result_field "$s" smoke retried_503) retried once after a 503), p50 $(result_field "$s" smoke p50_ms) ms, p95 $(result_field "$s" smoke p95_ms) ms, per app server $(result_field "$s" smoke per_engine), payments $(result_field "$s" smoke payments)"
  if ((ROLLING)); then
    local l=$WORK/probe-load.out
    say "rolling  ${#APP_NAMES[@]} app servers restarted one at a time under load: $(result_field "$l" load requests) requests, $(result_field "$l" load failed) failed (p99 $(result_field "$l" load p99_ms) ms, max $(result_field "$l" load max_ms) ms)"
  fi
  say "crash    shard $CRASH_SHARD's primary killed (kill -9): answered writes again after $(vf phase:crash answered_again_ms) ms; $(vf phase:crash unavailable_503) requests got 503 meanwhile, $(vf phase:crash in_progress_409) 409 in progress (retried), $(vf phase:crash failed_other) other failures, $(vf phase:crash failed_other_shards) on the other shards; old primary a synchronous standby $(secs "${TIMING[crash_rejoin]}") later (pg_rewind: $REWIND_CRASH)"
  say "cut      $CUT_HOST's link cut: shard $CUT_PRIMARY_SHARD (primary there) answered writes again after $(vf phase:cut answered_again_ms) ms, $(vf phase:cut unavailable_503) got 503, $(vf phase:cut in_progress_409) 409 in progress, $(vf phase:cut failed_other) other failures; shard $CUT_STANDBY_SHARD (standby there) wrote alone after $(vf phase:cut_standby answered_again_ms) ms, $(vf phase:cut_standby unavailable_503) got 503 (commits waiting for the vanished standby past the 6 s query deadline), $(vf phase:cut_standby in_progress_409) 409 in progress, $(vf phase:cut_standby failed_other) other failures; $CUT_HOST back as both standbys $(secs "${TIMING[cut_rejoin]}") after the link came back"
  for sw in "${SWITCHED[@]}"; do
    say "switch   shard $sw planned switchover: writes on the new primary after $(vf "phase:switchover$sw" answered_again_ms) ms; $(vf "phase:switchover$sw" unavailable_503) got 503, $(vf "phase:switchover$sw" in_progress_409) 409 in progress, $(vf "phase:switchover$sw" failed_other) other failures, $(vf "phase:switchover$sw" failed_other_shards) on the other shards"
  done
  say "writes   $(vf ha-verify orders_acked) orders and $(vf ha-verify payments_acked) payments acknowledged: $(vf ha-verify orders_lost) orders lost, $(vf ha-verify orders_changed) changed, $(vf ha-verify payments_lost) payments lost, $(vf ha-verify payments_changed) changed, $(vf ha-verify duplicated) duplicated; invariants (ledger, stock) $( [[ $(vf ha-verify invariants_ok) == true ]] && echo held || echo BROKEN)"
  say "probes   $(result_field "$WORK/probe-rounds.out" probes rounds) rounds of every node of every shard (every $(result_field "$WORK/probe-rounds.out" probes interval_p50_ms) ms): $(result_field "$WORK/probe-rounds.out" probes two_writable_rounds) with two writable nodes of one shard"
  say "restore  $DRILL_LINE"
  say "metrics  bf-ha-metrics.sh output for the alerts: $METRICS_OK"
}

main() {
  preflight
  exec 9>"$LOCK"
  flock -w 300 9 || { say "another deploy:local run holds $LOCK for more than 300 s"; exit 75; }
  preflight_netns
  trap cleanup EXIT
  trap 'say "interrupted"; exit 130' INT
  trap 'say "terminated"; exit 143' TERM
  trap 'exit 141' PIPE
  # A run killed with SIGKILL cannot clean up; the next one does (we hold the lock).
  if network_left; then
    say "removing what an earlier, interrupted run left behind"
    teardown_network
  fi
  rm -rf "$LOGS"/*.log "$WORK"/probe-*.out "$WORK/state.json" "$REC" "$FS" "$WORK"/pgdata "$WORK"/*/pgdata

  local t t_ha
  t=$(now_ms)
  build_release
  phase release "$t"
  HA_DIR=$DEPLOY/ha TOPOLOGY=$DEPLOY/topology.json

  read_topology "$DEPLOY/topology.json"
  check_network
  ha_read_placement
  say "topology: ${#APP_NAMES[@]} app (${APP_NAMES[*]}), ${#DB_NAMES[@]} db (${DB_NAMES[*]}) on $CIDR; shards $(for s in "${!SHARD_PAIR[@]}"; do printf '%s=%s:%s ' "$s" "${SHARD_PAIR[$s]// /+}" "${SHARD_PORT[$s]}"; done)(primary+standby:port); backups to $REPO$( ((QUICK)) && echo ', quick')"
  say "versions: $(patroni --version), etcd $(etcd --version | sed -n 's/^etcd Version: //p'), $(pgbackrest version), PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}')"

  say "1. the files: deploy:check on topology.json"
  indented node "$REL/dist/tools/ops/deploy-check.js" "$DEPLOY/topology.json" || fail "deploy:check refused topology.json"

  t=$(now_ms)
  say "2. six hosts: namespaces $(printf "$NS_PREFIX%s " "${APP_NAMES[@]}" "${DB_NAMES[@]}")on bridge $BRIDGE ($BRIDGE_ADDR = this shell, standing in for the operator and the load balancer)"
  local -a pairs=()
  local name i
  for i in "${!APP_NAMES[@]}"; do pairs+=("${APP_NAMES[$i]}=${APP_ADDRS[$i]}"); done
  for i in "${!DB_NAMES[@]}"; do pairs+=("${DB_NAMES[$i]}=${DB_ADDRS[$i]}"); done
  setup_network "$BRIDGE_ADDR" "${pairs[@]}"
  phase network "$t"

  t=$(now_ms)
  say "2b. the release on ${APP_NAMES[*]} (and $DRILL_HOST, for the restore drill's restore-check): $REL_BASE.tgz unpacked into /opt/$REL_BASE, /opt/bf-engine -> $REL_BASE (here ${WORK#"$ROOT"/}/<host>/opt)"
  local unpacked=0
  for name in "${APP_NAMES[@]}" "$DRILL_HOST"; do install_release "$name" & done
  for _ in "${APP_NAMES[@]}" "$DRILL_HOST"; do wait -n || unpacked=1; done
  ((unpacked == 0)) || fail "the release could not be unpacked on every app server"
  phase install "$t"

  t=$(now_ms)
  say "3. the database tier: etcd on ${ETCD_MEMBERS[*]}, bf-patroni@shard<N> twice per db host (a primary and another shard's synchronous standby), pgBackRest's servers; files rendered by ha/render.mjs"
  render_files
  start_database_tier
  phase database "$t"
  say "3b. pgBackRest on $REPO: stanza-create, check (WAL reaches the repository), a full backup of every shard (copied from its standby)"
  backups

  install_engine_env
  say "4. the rendered environment (same file on ${APP_NAMES[*]}; WORKERS=$LOCAL_WORKERS here; PG_SHARDS from render.mjs: both hosts of every shard): deploy:check --env"
  indented node "$REL/dist/tools/ops/deploy-check.js" "$WORK/topology.local.json" --env "$WORK/engine.env" ||
    fail "deploy:check refused the rendered engine.env"

  t=$(now_ms)
  say "5. migrations from ${APP_NAMES[0]}: migrate-cli (it finds each shard's primary), then again (nothing left to apply), then --check"
  indented in_app1 node dist/tools/ops/migrate-cli.js || fail "migrate-cli failed"
  indented in_app1 node dist/tools/ops/migrate-cli.js || fail "migrate-cli (second run) failed"
  indented in_app1 node dist/tools/ops/migrate-cli.js --check || fail "migrate-cli --check says a shard is behind"
  local hba
  if hba=$(PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" "postgresql://$PG_USER:${FILL[PG_PASSWORD]}@${ADDR[${SHARD_HOME[0]}]}:${SHARD_PORT[0]}/$PG_DB" -Atc 'SELECT 1' 2>&1); then
    fail "pg_hba.conf let $BRIDGE_ADDR (not an app host) in"
  fi
  say "    pg_hba: a connection from $BRIDGE_ADDR (not an app host) is refused: ${hba//$'\n'/ }"
  phase migrate "$t"

  t=$(now_ms)
  say "6. app servers: bf-redis.service and bf-engine.service on ${APP_NAMES[*]}, simulators on $SIM_HOST"
  for name in "${APP_NAMES[@]}"; do start_unit "$name" bf-redis.service redis; done
  start_unit "$SIM_HOST" bf-gateway-sim.service gateway
  start_unit "$SIM_HOST" bf-provider-sim.service provider
  sleep 0.3
  for name in "${APP_NAMES[@]}"; do start_unit "$name" bf-engine.service engine; done
  local -a ready=()
  for i in "${!APP_ADDRS[@]}"; do ready+=("http://${APP_ADDRS[$i]}:$ENGINE_PORT/readyz"); done
  local sim_addr=${ADDR[$SIM_HOST]}
  run_fg wait_http 90000 "${ready[@]}" "http://$sim_addr:$GATEWAY_PORT/healthz" "http://$sim_addr:$PROVIDER_PORT/healthz" ||
    { assert_alive; fail "the app servers did not become ready (logs in $LOGS)"; }
  assert_alive
  local pid
  for i in "${!APP_NAMES[@]}"; do
    pid=${PIDS[engine-${APP_NAMES[$i]}]}
    say "    ${APP_NAMES[$i]} http://${APP_ADDRS[$i]}:$ENGINE_PORT ready (primary pid $pid, $(pgrep -g "$pid" | wc -l) node processes, as $(ps -o user= -p "$pid"), in $(readlink "/proc/$pid/cwd" | sed "s|^$ROOT/||"))"
  done
  phase start "$t"

  local engines
  engines=$(IFS=,; echo "${ready[*]//\/readyz/}")
  t=$(now_ms)
  say "7. smoke: $SMOKE_REQUESTS requests round-robin through ${APP_NAMES[*]} (catalog on every shard, customers, orders, reads, card payments via the gateway simulator)"
  probe setup --engines "$engines" --admin-email "${FILL[ADMIN_EMAIL]}" --admin-password "${FILL[ADMIN_PASSWORD]}" || fail "setup failed"
  local smoke_ok=1
  probe smoke --requests "$SMOKE_REQUESTS" --concurrency 8 --gateway "http://$sim_addr:$GATEWAY_PORT" || smoke_ok=0
  phase smoke "$t"
  assert_alive

  local rolling_ok=1
  if ((ROLLING)); then
    t=$(now_ms)
    say "7b. rolling restart of ${APP_NAMES[*]} under load (RUNBOOK.md): out of the balancer, SIGTERM, start, /readyz, back in"
    rolling_restart || rolling_ok=0
    phase rolling "$t"
  fi

  t_ha=$(now_ms)
  say "8. under load (checkouts and card payments through ${APP_NAMES[*]}, every acknowledged answer recorded; every node of every shard probed for pg_is_in_recovery() every 150 ms from ${APP_NAMES[0]})"
  start_recorded_load
  crash_primary
  cut_link
  switch_home
  assert_alive
  sleep 2
  local target; target=$(now_ms)
  echo "$target" >"$REC/drill-target"   # the restore drill's moment (kept beside the marks)
  sleep 3
  stop_recorded_load
  phase ha "$t_ha"

  say "9. judging: every acknowledged order and payment on the shards' primaries now, invariants, per-phase answers, split-brain rounds"
  local verify_ok=1
  verify_records || verify_ok=0

  t=$(now_ms)
  say "10. restore drill: shard $DRILL_SHARD to $(pitr_time "$target") (the load went on for 3 s after it) on $DRILL_HOST (ha/pgbackrest/restore-drill.sh), checked against its invariants and the live shard"
  local drill_ok=1
  restore_drill "$target" || drill_ok=0
  phase drill "$t"

  say "11. the figures the alerts read: bf-ha-metrics.sh on ${ETCD_MEMBERS[*]} and $REPO"
  ha_metrics
  assert_alive

  summary
  local yn_s=no yn_r=skipped yn_v=no yn_p=no yn_d=no
  ((smoke_ok)) && yn_s=yes
  if ((ROLLING)); then yn_r=no; ((rolling_ok)) && yn_r=yes; fi
  ((verify_ok)) && [[ $(vf ha-verify ok) == true ]] && yn_v=yes
  [[ $(result_field "$WORK/probe-rounds.out" probes two_writable_rounds) == 0 ]] && yn_p=yes
  ((drill_ok)) && yn_d=yes
  # A crash or a switchover of one shard fails nothing on the others; a planned
  # switchover fails nothing on its own shard beyond the 503s of its window.
  local yn_i=yes sw
  [[ $(vf phase:crash failed_other_shards) == 0 ]] || yn_i=no
  for sw in "${SWITCHED[@]}"; do
    [[ $(vf "phase:switchover$sw" failed_other_shards) == 0 && $(vf "phase:switchover$sw" failed_other) == 0 ]] || yn_i=no
  done
  local line="smoke_ok=$yn_s rolling_restart=$yn_r acknowledged_kept=$yn_v one_writable=$yn_p isolated=$yn_i restore_drill=$yn_d metrics=$METRICS_OK"
  if [[ $yn_s == yes && $yn_r != no && $yn_v == yes && $yn_p == yes && $yn_i == yes && $yn_d == yes && $METRICS_OK == yes ]]; then
    say "RESULT PASS $line"
  else
    say "RESULT FAIL $line (logs in ${LOGS#"$ROOT"/})"
    exit 1
  fi
}

main
