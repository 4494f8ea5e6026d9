#!/usr/bin/env bash
# deploy/6-node on one machine: six Linux network namespaces stand in for the six
# servers of topology.json (bf-app1..3, bf-db1..3 on a bridge, each with its own
# address), and everything runs from the release, as an operator ships it:
#   `npm run release` builds bf-engine-<version>.tgz; it is unpacked on every app server
#   into /opt/bf-engine-<version>, /opt/bf-engine pointing at it (here: under
#   .stack/deploy/<host>/opt); the checkout's sources are not used by any server,
#   postgres/postgresql.conf + pg_hba.conf + provision.sql (from the release) on db1..db3,
#   engine.env.example rendered once (secrets filled in) and used by all app servers,
#   migrate-cli from app1's release, redis + bf-engine (+ the simulators on app1) started
#   with the ExecStart, EnvironmentFile and WorkingDirectory of the units it carries.
# Then: a smoke load through all three app servers, (full run) a rolling restart of
# the app servers under load (no request may fail), one db host cut off (only its
# shard may fail: 503 within the bound the configuration promises, every other shard
# keeps answering), the cut repaired (it must heal with nothing restarted).
# Everything it starts it stops, and removes the namespaces and the bridge, on any
# exit (success, failure, Ctrl-C, SIGTERM).
#
# usage: deploy/6-node/deploy-local.sh [--quick] [--rolling] [--fault link|stop|both] [--down db2]
#   --quick       fewer requests, shorter fault windows, no rolling restart (the test uses it)
#   --rolling     the RUNBOOK's rolling restart under load, also with --quick
#   --fault link  the db host's network link goes down (a partition: no RST, packets vanish)
#   --fault stop  its PostgreSQL is killed (pg_ctl -m immediate: connections reset at once)
#   --fault both  (default) one after the other, each followed by its repair
# exit:  0 proven, 1 a check failed, 2 usage, 75 another run holds the lock,
#        77 SKIPPED: this machine cannot run it (not root, no network namespaces,
#        no PostgreSQL/Redis binaries); the reason is printed.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$ROOT/.stack/deploy            # git-ignored (.stack/)
REL=                                # the release as built, on the operator's side (set by build_release)
REL_TGZ=                            # its tarball, what the app servers get
DEPLOY=                             # $REL/deploy/6-node: the files below come from the release
LOGS=$WORK/logs
EX_SKIP=77
NS_PREFIX=bf-
BRIDGE=bf-br0
LOCK=/run/lock/bf-deploy-local.lock
[[ -w /run/lock ]] || LOCK=/tmp/bf-deploy-local.lock

QUICK=0 FAULT=both DOWN=db2 ROLLING=
while (($#)); do
  case $1 in
    --quick) QUICK=1 ;;
    --rolling) ROLLING=1 ;;
    --fault) FAULT=${2:-}; shift ;;
    --down) DOWN=${2:-}; shift ;;
    -h|--help) sed -n '2,/^set -E/{/^#/p}' "$0"; exit 0 ;;
    *) echo "deploy:local: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $FAULT == link || $FAULT == stop || $FAULT == both ]] || { echo "deploy:local: --fault must be link, stop or both" >&2; exit 2; }

# Sizes of the proof (this box has 2 cores; topology.json describes 8-core app servers).
LOCAL_WORKERS=2
if ((QUICK)); then SMOKE_REQUESTS=300 FAULT_WINDOW_MS=6000; else SMOKE_REQUESTS=1500 FAULT_WINDOW_MS=10000; fi
[[ -n $ROLLING ]] || ROLLING=$((1 - QUICK))
declare -A FAULT_BOUND_MS=()        # per fault kind, from the rendered env: see fault_bound
HEAL_TIMEOUT_MS=30000

T_START=$(date +%s%3N)
declare -A PIDS=()                  # name -> pid of every long-running process we started
declare -A TIMING=()
FG_PID=
CLEANING=0

say() { printf 'deploy:local %s\n' "$*"; }
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
skip() { say "SKIPPED: $*"; say "RESULT SKIPPED (exit $EX_SKIP): the proof did not run on this machine"; exit $EX_SKIP; }
fail() { say "FAILED: $*"; exit 1; }

# ---- preflight: can this machine do it at all? (exit 77 = skipped, said clearly) ------

preflight() {
  [[ $(id -u) == 0 ]] || skip "needs root (network namespaces, veth, bridge, running postgres as its user); run it as root"
  local c
  for c in ip setpriv runuser flock setsid; do
    command -v "$c" >/dev/null || skip "the '$c' command is missing (iproute2 / util-linux)"
  done
  PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/psql ]] ||
    skip "PostgreSQL server binaries not found (apt-get install postgresql, or set PG_BIN)"
  id postgres >/dev/null 2>&1 || skip "no 'postgres' system user to run PostgreSQL as"
  REDIS_SERVER=$(command -v redis-server || true)
  [[ -n $REDIS_SERVER ]] || skip "redis-server not found (apt-get install redis-server)"
  command -v tar >/dev/null || skip "the 'tar' command is missing"
  # The release tool, and the probe that stands in for clients and the load balancer.
  [[ -f $ROOT/dist/tools/build/release.js && -f $ROOT/dist/tools/fleet-probe/main.js ]] || fail "dist/ is not built: run npm run build first"
}

# Under the lock: another run's cleanup removes every bf-preflight-* namespace.
preflight_netns() {
  local probe=${NS_PREFIX}preflight-$$ err
  if ! err=$(ip netns add "$probe" 2>&1); then skip "this machine refuses network namespaces: $err"; fi
  if ! err=$( { ip -n "$probe" link add bf-pf0 type veth peer name bf-pf1 && ip -n "$probe" link add bf-pfbr type bridge; } 2>&1); then
    ip netns del "$probe" 2>/dev/null || true
    skip "network namespaces work but veth/bridge devices are refused: $err"
  fi
  ip netns del "$probe"
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
}

addr_of() { # host name -> address
  local i
  for i in "${!APP_NAMES[@]}"; do [[ ${APP_NAMES[$i]} == "$1" ]] && { echo "${APP_ADDRS[$i]}"; return; }; done
  for i in "${!DB_NAMES[@]}"; do [[ ${DB_NAMES[$i]} == "$1" ]] && { echo "${DB_ADDRS[$i]}"; return; }; done
  return 1
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

alive() { # a pid that exists and is not a zombie
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $st != Z* ]]
}

stop_pid() { # name pid grace_s: SIGTERM, wait, then SIGKILL the process group
  local name=$1 pid=$2 grace=$3 i
  alive "$pid" || { kill -KILL -- "-$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    say "  $name (pid $pid) did not stop in ${grace} s: SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  # The engine's workers share the primary's process group (setsid): none may outlive it.
  kill -KILL -- "-$pid" 2>/dev/null || true
}

pg_stop() { # data dir
  [[ -f $1/postmaster.pid ]] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t 20 stop >/dev/null 2>&1 ||
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$1" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
}

teardown_network() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${NS_PREFIX}(app|db)[0-9]+$|^${NS_PREFIX}preflight-" || true); do
    # Anything still running inside one of our namespaces was started by this script.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  for dev in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^bf-v-|^bf-p-|^$BRIDGE$" || true); do
    ip link del "$dev" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  ((CLEANING)) && return
  CLEANING=1
  trap '' PIPE INT TERM
  set +e
  say "cleanup: stopping everything this run started (exit $rc)" 2>/dev/null
  [[ -n $FG_PID ]] && kill -TERM "$FG_PID" 2>/dev/null
  local name d
  local -a jobs=()
  # Engines first (they drain), then Redis and the simulators, then the databases.
  for name in "${!PIDS[@]}"; do [[ $name == engine-* ]] || continue; stop_pid "$name" "${PIDS[$name]}" 25 & jobs+=($!); done
  ((${#jobs[@]})) && wait "${jobs[@]}" 2>/dev/null
  jobs=()
  for name in "${!PIDS[@]}"; do [[ $name == engine-* ]] && continue; stop_pid "$name" "${PIDS[$name]}" 5 & jobs+=($!); done
  ((${#jobs[@]})) && wait "${jobs[@]}" 2>/dev/null
  jobs=()
  for d in "$WORK"/*/pgdata; do [[ -d $d ]] || continue; pg_stop "$d" & jobs+=($!); done
  ((${#jobs[@]})) && wait "${jobs[@]}" 2>/dev/null
  teardown_network
  for d in "$WORK"/*/pgdata "$WORK"/*/opt; do rm -rf "$d"; done
  if ip netns list 2>/dev/null | grep -qE "^${NS_PREFIX}(app|db)[0-9]+" || ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "cleanup: WARNING: namespaces or $BRIDGE still present; run this script again to clear them" 2>/dev/null
  else
    say "cleanup: done (namespaces, veths and $BRIDGE removed; logs kept in ${LOGS#"$ROOT"/})" 2>/dev/null
  fi
  exit "$rc"
}

# Run a command in the foreground but stay interruptible: a trapped signal interrupts
# `wait` at once, where it would otherwise wait for the command to finish.
run_fg() {
  "$@" 9>&- &
  FG_PID=$!
  local rc=0
  wait "$FG_PID" || rc=$?
  FG_PID=
  return "$rc"
}

# ---- the six hosts -------------------------------------------------------------------

setup_network() {
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" type bridge stp_state 0
  ip addr add "$BRIDGE_ADDR/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  local name addr ns
  for name in "${APP_NAMES[@]}" "${DB_NAMES[@]}"; do
    addr=$(addr_of "$name") ns=$NS_PREFIX$name
    ip netns add "$ns"
    ip link add "bf-v-$name" type veth peer name "bf-p-$name"
    ip link set "bf-p-$name" netns "$ns"
    ip -n "$ns" link set "bf-p-$name" name eth0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip link set "bf-v-$name" master "$BRIDGE"
    ip link set "bf-v-$name" up
  done
  # No default route anywhere: a namespace reaches its peers on the bridge and nothing else.
}

# ---- files: render the templates the way an operator would fill them in ------------------

secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

render() { # template out: replace CHANGE_ME_ tokens; refuse to leave one behind
  local tmpl=$1 out=$2 k
  local -a expr=()
  for k in "${!FILL[@]}"; do expr+=(-e "s|CHANGE_ME_$k|${FILL[$k]}|g"); done
  sed "${expr[@]}" "$tmpl" >"$out"
  if grep -nv '^[[:space:]]*#' "$out" | grep 'CHANGE_ME_' >&2; then fail "$out still has CHANGE_ME_ placeholders"; fi
}

render_files() {
  local sim_addr app1
  sim_addr=$(addr_of "$SIM_HOST") app1=${APP_ADDRS[0]}
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
    for (const o of [t.engine, t.postgres, t.redis, t.simulators]) for (const k of ["env_file", "systemd_unit", "config", "hba"]) if (o?.[k]) o[k] = abs(o[k]);
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
    cp "$WORK/engine.env" "$WORK/$name/engine.env"            # the same file on every app server
    FILL[PRIVATE_ADDRESS]=${APP_ADDRS[$i]}
    render "$DEPLOY/redis/bf-redis.conf" "$WORK/$name/redis.conf"
    chown -R nobody:nogroup "$WORK/$name/redis"
  done
  unset 'FILL[PRIVATE_ADDRESS]'
  render "$DEPLOY/sim.env.example" "$WORK/$SIM_HOST/sim.env"
  # As on the servers: secrets readable by root (which hands them to the services) and,
  # for redis.conf, by the unprivileged Redis.
  chmod 0600 "$WORK/engine.env" "$WORK"/*/engine.env "$WORK/$SIM_HOST/sim.env"
  chown root:nogroup "$WORK"/*/redis.conf
  chmod 0640 "$WORK"/*/redis.conf
}

# ---- PostgreSQL on db1..db3: initdb, the deploy fragment, pg_hba, provision ----------------

start_postgres() { # db name
  local name=$1 dir=$WORK/$1/pgdata ns=$NS_PREFIX$1
  rm -rf "$dir"
  install -d -m 0700 -o postgres -g postgres "$dir"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$dir" -U postgres -E UTF8 --locale=C --auth-local=peer --auth-host=scram-sha-256 \
    >"$LOGS/$name-initdb.log" 2>&1 || fail "initdb for $name failed: see $LOGS/$name-initdb.log"
  install -d -m 0700 -o postgres -g postgres "$dir/conf.d"
  install -m 0600 -o postgres -g postgres "$DEPLOY/postgres/postgresql.conf" "$dir/conf.d/10-bf-shard.conf"
  cat >"$dir/conf.d/90-deploy-local.conf" <<EOF
# deploy-local.sh only: this machine is not a 64 GB database box, and three shards
# share it. Everything else comes from 10-bf-shard.conf unchanged.
shared_buffers = 128MB
effective_cache_size = 512MB
wal_buffers = 4MB
maintenance_work_mem = 64MB
autovacuum_work_mem = 32MB
max_wal_size = 1GB
min_wal_size = 80MB
huge_pages = off
# The machine's own PostgreSQL owns /var/run/postgresql; keep our sockets apart.
unix_socket_directories = '$dir'
EOF
  chown postgres:postgres "$dir/conf.d/90-deploy-local.conf"
  echo "include_dir = 'conf.d'" >>"$dir/postgresql.conf"
  install -m 0640 -o postgres -g postgres /dev/null "$LOGS/$name-postgres.log"   # written by postgres itself
  install -m 0600 -o postgres -g postgres "$DEPLOY/postgres/pg_hba.conf" "$dir/pg_hba.conf"
  ip netns exec "$ns" runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir" -l "$LOGS/$name-postgres.log" -w -t 60 start >/dev/null 9>&- ||
    fail "postgres on $name did not start: see $LOGS/$name-postgres.log"
  ip netns exec "$ns" runuser -u postgres -- "$PG_BIN/psql" -h "$dir" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
    -v engine_password="${FILL[PG_PASSWORD]}" -f "$DEPLOY/postgres/provision.sql" >"$LOGS/$name-provision.log" 2>&1 ||
    fail "provision.sql on $name failed: see $LOGS/$name-provision.log"
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

indented() { # cmd...: run, print its output indented, keep its exit status
  local out rc=0
  out=$(mktemp)
  "$@" >"$out" 2>&1 || rc=$?
  sed 's/^/    /' "$out"
  rm -f "$out"
  return "$rc"
}

probe() { # phase [label] args...: fleet-probe from the root namespace, over the bridge
  local phase=$1 out=$WORK/probe-$1.out rc=0
  shift
  if [[ ${1:-} != --* ]]; then out=$WORK/probe-$phase-$1.out; shift; fi
  run_fg node "$ROOT/dist/tools/fleet-probe/main.js" "$phase" "$@" --state "$WORK/state.json" >"$out" 2>&1 || rc=$?
  sed 's/^/    /' "$out"
  return "$rc"
}

# ---- the cut --------------------------------------------------------------------------

cut_db() { # link|stop
  if [[ $1 == link ]]; then ip link set "bf-v-$DOWN" down
  else runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/$DOWN/pgdata" -m immediate -w stop >/dev/null; fi
}

restore_db() { # link|stop
  if [[ $1 == link ]]; then ip link set "bf-v-$DOWN" up
  else ip netns exec "$NS_PREFIX$DOWN" runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/$DOWN/pgdata" -l "$LOGS/$DOWN-postgres.log" -w -t 60 start >/dev/null 9>&-; fi
}

# How long a request to a cut shard may take before its 503, from the configuration:
#   stop (connections reset): a new connection fails within PG_CONNECT_TIMEOUT_MS, and
#     the shard is then declared down: + 0.5 s of slack. This is the "fast" promise.
#   link (a partition, packets vanish): a request on a pooled connection to the host
#     waits for the client-side query_timeout (PG_SHARDS' value overrides the engine's
#     own, PG_STATEMENT_TIMEOUT_MS + 1 s). Measured: requests arriving in the first
#     second, before any worker has seen an error, can wait for it twice (a down shard
#     turns checkouts away only for SHARD_DOWN_COOLDOWN_MS; after it a checkout may get
#     another idle connection to the vanished host: src/shard/pools.ts).
#     Bound: 2 x query_timeout + PG_CONNECT_TIMEOUT_MS + 0.5 s.
fault_bound() { # link|stop
  local env=$WORK/engine.env qt ct
  qt=$(sed -n 's/^PG_SHARDS=.*query_timeout=\([0-9]*\).*/\1/p' "$env")
  ct=$(sed -n 's/^PG_CONNECT_TIMEOUT_MS=//p' "$env")
  ct=${ct:-1500}
  if [[ $1 == stop ]]; then echo $((ct + 500))
  elif [[ -n $qt ]]; then echo $((2 * qt + ct + 500)); fi
  return 0
}

run_fault() { # link|stop shard
  local kind=$1 shard=$2 t_cut t_restore ok=1
  say "8.$kind fault: $DOWN (shard $shard) cut off by '$kind' for $(secs "$FAULT_WINDOW_MS"); probes on every app server x every shard every 250 ms; its requests must answer 503 within ${FAULT_BOUND_MS[$kind]} ms, or no slower than the healthy shards"
  t_cut=$(now_ms)
  cut_db "$kind"
  probe fault "$kind" --shard "$shard" --t0-ms "$t_cut" --window-ms "$FAULT_WINDOW_MS" --bound-ms "${FAULT_BOUND_MS[$kind]}" || ok=0
  phase "fault-$kind" "$t_cut"
  say "9.$kind heal: $DOWN repaired ($([[ $kind == link ]] && echo 'link up' || echo 'pg_ctl start')); nothing else restarted"
  t_restore=$(now_ms)
  restore_db "$kind"
  probe heal "$kind" --shard "$shard" --t0-ms "$t_restore" --timeout-ms "$HEAL_TIMEOUT_MS" || ok=0
  phase "heal-$kind" "$t_restore"
  assert_alive
  return $((1 - ok))
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

fault_summary() { # kind
  local f=$WORK/probe-fault-$1.out h=$WORK/probe-heal-$1.out
  say "fault    $1: $DOWN (shard $(result_field "$f" fault shard)) cut: $(result_field "$f" fault cut_503)/$(result_field "$f" fault cut_probes) requests to its categories answered 503 unavailable within $(result_field "$f" fault limit_ms) ms (bound ${FAULT_BOUND_MS[$1]} ms or the healthy shards' slowest answer; p50 $(result_field "$f" fault cut_p50_ms) ms, p95 $(result_field "$f" fault cut_p95_ms) ms, max $(result_field "$f" fault cut_max_ms) ms, first $(result_field "$f" fault first_503_after_cut_ms) ms after the cut); other shards $(result_field "$f" fault other_ok)/$(result_field "$f" fault other_probes) succeeded (p95 $(result_field "$f" fault other_p95_ms) ms)"
  say "heal     $1: every app server x every shard ok $(result_field "$h" heal all_ok_after_ms) ms after the repair (first success per app server $(result_field "$h" heal per_engine_ms) ms); /readyz 200 everywhere at $(result_field "$h" heal readyz_ok_after_ms) ms"
}

phase() { # name start_ms
  TIMING[$1]=$(($(now_ms) - $2))
  say "  ($1: $(secs "${TIMING[$1]}"))"
}

main() {
  preflight
  mkdir -p "$LOGS"
  exec 9>"$LOCK"
  flock -w 300 9 || { say "another deploy:local run holds $LOCK for more than 300 s"; exit 75; }
  preflight_netns
  trap cleanup EXIT
  trap 'say "interrupted"; exit 130' INT
  trap 'say "terminated"; exit 143' TERM
  trap 'exit 141' PIPE
  # A run killed with SIGKILL cannot clean up; the next one does (we hold the lock).
  if ip netns list | grep -qE "^${NS_PREFIX}(app|db)[0-9]+" || ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "removing what an earlier, interrupted run left behind"
    for d in "$WORK"/*/pgdata; do [[ -d $d ]] && pg_stop "$d"; done
    teardown_network
  fi
  rm -f "$LOGS"/*.log "$WORK"/probe-*.out "$WORK/state.json"

  local t
  t=$(now_ms)
  build_release
  phase release "$t"

  read_topology "$DEPLOY/topology.json"
  check_network
  [[ " ${DB_NAMES[*]} " == *" $DOWN "* ]] || fail "--down $DOWN is not a db host of the topology (${DB_NAMES[*]})"
  local down_shard=-1 i
  for i in "${!DB_NAMES[@]}"; do [[ ${DB_NAMES[$i]} == "$DOWN" ]] && down_shard=$i; done
  say "topology: ${#APP_NAMES[@]} app (${APP_NAMES[*]}), ${#DB_NAMES[@]} db (${DB_NAMES[*]}) on $CIDR; fault: $DOWN = shard $down_shard, by $FAULT$( ((QUICK)) && echo ', quick')"

  say "1. the files: deploy:check on topology.json"
  indented node "$REL/dist/tools/ops/deploy-check.js" "$DEPLOY/topology.json" || fail "deploy:check refused topology.json"

  t=$(now_ms)
  say "2. six hosts: namespaces $(printf "$NS_PREFIX%s " "${APP_NAMES[@]}" "${DB_NAMES[@]}")on bridge $BRIDGE ($BRIDGE_ADDR = this shell, standing in for the operator and the load balancer)"
  setup_network
  phase network "$t"

  t=$(now_ms)
  say "2b. the release on ${APP_NAMES[*]}: $REL_BASE.tgz unpacked into /opt/$REL_BASE, /opt/bf-engine -> $REL_BASE (here ${WORK#"$ROOT"/}/<host>/opt)"
  local name unpacked=0
  for name in "${APP_NAMES[@]}"; do install_release "$name" & done
  for _ in "${APP_NAMES[@]}"; do wait -n || unpacked=1; done
  ((unpacked == 0)) || fail "the release could not be unpacked on every app server"
  phase install "$t"

  t=$(now_ms)
  say "3. PostgreSQL primaries on ${DB_NAMES[*]}: initdb, postgres/postgresql.conf as conf.d/10-bf-shard.conf, postgres/pg_hba.conf, provision.sql"
  render_files
  for name in "${DB_NAMES[@]}"; do start_postgres "$name" & done
  local failed=0; for _ in "${DB_NAMES[@]}"; do wait -n || failed=1; done
  ((failed == 0)) || fail "a PostgreSQL primary did not come up"
  for i in "${!DB_NAMES[@]}"; do
    say "    ${DB_NAMES[$i]} ${DB_ADDRS[$i]}:$PG_PORT: $(ip netns exec "$NS_PREFIX${DB_NAMES[$i]}" runuser -u postgres -- "$PG_BIN/psql" -h "$WORK/${DB_NAMES[$i]}/pgdata" -U postgres -Atc "SELECT 'max_connections=' || current_setting('max_connections') || ' superuser_reserved=' || current_setting('superuser_reserved_connections') || ' synchronous_commit=' || current_setting('synchronous_commit') || ' wal_compression=' || current_setting('wal_compression') || ' statement_timeout=' || current_setting('statement_timeout')")"
  done
  phase postgres "$t"

  say "4. the rendered environment (same file on ${APP_NAMES[*]}; WORKERS=$LOCAL_WORKERS here): deploy:check --env"
  indented node "$REL/dist/tools/ops/deploy-check.js" "$WORK/topology.local.json" --env "$WORK/engine.env" ||
    fail "deploy:check refused the rendered engine.env"

  t=$(now_ms)
  say "5. migrations from ${APP_NAMES[0]}: migrate-cli, then again (nothing left to apply), then --check"
  indented in_app1 node dist/tools/ops/migrate-cli.js || fail "migrate-cli failed"
  indented in_app1 node dist/tools/ops/migrate-cli.js || fail "migrate-cli (second run) failed"
  indented in_app1 node dist/tools/ops/migrate-cli.js --check || fail "migrate-cli --check says a shard is behind"
  local hba
  if hba=$(PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" "postgresql://$PG_USER:${FILL[PG_PASSWORD]}@${DB_ADDRS[0]}:$PG_PORT/$PG_DB" -Atc 'SELECT 1' 2>&1); then
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
  local sim_addr; sim_addr=$(addr_of "$SIM_HOST")
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

  FAULT_BOUND_MS[link]=$(fault_bound link) FAULT_BOUND_MS[stop]=$(fault_bound stop)
  [[ -n ${FAULT_BOUND_MS[link]} ]] || fail "PG_SHARDS has no query_timeout: requests to a partitioned shard would hang (see engine.env.example)"
  local -a kinds=("$FAULT")
  [[ $FAULT == both ]] && kinds=(link stop)
  local kind fault_ok=1
  for kind in "${kinds[@]}"; do run_fault "$kind" "$down_shard" || fault_ok=0; done

  local total=$(($(now_ms) - T_START)) s=$WORK/probe-smoke.out
  say "================================ SUMMARY ================================"
  say "hosts    ${NS_PREFIX}${APP_NAMES[0]}..${APP_NAMES[-1]} ${APP_ADDRS[*]}, ${NS_PREFIX}${DB_NAMES[0]}..${DB_NAMES[-1]} ${DB_ADDRS[*]} (netns on $BRIDGE)"
  local faults=""
  for kind in "${kinds[@]}"; do faults+=", fault/$kind $(secs "${TIMING[fault-$kind]}") + heal $(secs "${TIMING[heal-$kind]}")"; done
  ((ROLLING)) && faults=", rolling restart $(secs "${TIMING[rolling]}")$faults"
  say "timings  release $(secs "${TIMING[release]}"), network $(secs "${TIMING[network]}"), install $(secs "${TIMING[install]}"), postgres x${#DB_NAMES[@]} $(secs "${TIMING[postgres]}"), migrate $(secs "${TIMING[migrate]}"), app servers ready $(secs "${TIMING[start]}"), smoke $(secs "${TIMING[smoke]}")$faults; total $(secs "$total") before cleanup"
  say "smoke    $(result_field "$s" smoke requests) requests, $(result_field "$s" smoke unexpected) unexpected, p50 $(result_field "$s" smoke p50_ms) ms, p95 $(result_field "$s" smoke p95_ms) ms, max $(result_field "$s" smoke max_ms) ms, per app server $(result_field "$s" smoke per_engine), payments $(result_field "$s" smoke payments)"
  if ((ROLLING)); then
    local l=$WORK/probe-load.out
    say "rolling  ${#APP_NAMES[@]} app servers restarted one at a time under load: $(result_field "$l" load requests) requests, $(result_field "$l" load failed) failed (p99 $(result_field "$l" load p99_ms) ms, max $(result_field "$l" load max_ms) ms), per app server $(result_field "$l" load per_engine)"
  fi
  for kind in "${kinds[@]}"; do fault_summary "$kind"; done
  local yn_f=yes yn_h=yes yn_s=no yn_r=skipped
  ((smoke_ok)) && yn_s=yes
  if ((ROLLING)); then yn_r=no; ((rolling_ok)) && yn_r=yes; fi
  for kind in "${kinds[@]}"; do
    [[ $(result_field "$WORK/probe-fault-$kind.out" fault isolated) == true ]] || yn_f=no
    [[ $(result_field "$WORK/probe-heal-$kind.out" heal healed) == true ]] || yn_h=no
  done
  if ((smoke_ok && fault_ok && rolling_ok)) && [[ $yn_f == yes && $yn_h == yes ]]; then
    say "RESULT PASS smoke_ok=$yn_s rolling_restart=$yn_r fault_isolated=$yn_f healed=$yn_h"
  else
    say "RESULT FAIL smoke_ok=$yn_s rolling_restart=$yn_r fault_isolated=$yn_f healed=$yn_h (logs in ${LOGS#"$ROOT"/})"
    exit 1
  fi
}

main
