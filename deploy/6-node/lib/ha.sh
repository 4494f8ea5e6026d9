# The HA layer of deploy/6-node/ha on namespaced hosts: etcd on the db hosts, a Patroni
# cluster per shard (primary + synchronous standby, cross-placed as placement.json says),
# pgBackRest's servers and its repository host. Every file is rendered by ha/render.mjs
# as an operator renders it, every service started as its unit says. Sourced by
# deploy-local.sh after lib/hosts.sh.
#
# The caller sets: HA_DIR (the ha/ folder of the release), TOPOLOGY (topology.json),
#   FS (where each host's files live: FS/<host>/etc/..., FS/<host>/var/lib/...), LOGS,
#   PG_BIN, HA_PIDS (associative: name -> pid of the layer's services).

HA_POLICY_GUARD=0

ha_install_packages() {
  local -a missing=()
  [[ -x $PG_BIN/initdb ]] || missing+=(postgresql-15)
  command -v patroni >/dev/null || missing+=(patroni)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  command -v pgbackrest >/dev/null || missing+=(pgbackrest)
  command -v curl >/dev/null || missing+=(curl)
  command -v openssl >/dev/null || missing+=(openssl)
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || skip "missing packages ${missing[*]}, and no apt-get to install them"
  say "installing ${missing[*]} with apt-get (the services they ship are not started)"
  # Debian starts a package's services on install (etcd on 127.0.0.1:2379): not here.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# deploy-local.sh: no service starts while it installs packages\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    HA_POLICY_GUARD=1
  fi
  local ok=1
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$LOGS/apt.log" 2>&1 || ok=0
  ha_policy_release
  ((ok)) || skip "apt-get could not install ${missing[*]}: $(tail -n 3 "$LOGS/apt.log" | tr '\n' ' ')"
  # Nor at the next boot of a machine run by systemd.
  [[ -d /run/systemd/system ]] && systemctl disable etcd.service patroni.service >/dev/null 2>&1 || true
  local u
  for u in postgres etcd; do id "$u" >/dev/null 2>&1 || skip "no '$u' user (the postgresql-15 and etcd-server packages create it)"; done
}

ha_policy_release() { if ((HA_POLICY_GUARD)); then rm -f /usr/sbin/policy-rc.d; HA_POLICY_GUARD=0; fi; }

# ---- the placement: shard -> port, REST port, [primary, standby]; etcd; the repository ------

ha_read_placement() {
  eval "$(node --input-type=module -e '
    import { readFileSync } from "node:fs";
    const p = JSON.parse(readFileSync(process.argv[1], "utf8"));
    for (const s of p.shards) {
      console.log(`SHARD_PORT[${s.shard}]=${s.pg_port} SHARD_REST[${s.shard}]=${s.rest_port} SHARD_HOME[${s.shard}]=${s.nodes[0]} SHARD_PAIR[${s.shard}]="${s.nodes.join(" ")}"`);
    }
    console.log(`REPO=${p.backup.repo_host} ETCD_PORT=${p.etcd.client_port} ETCD_MEMBERS=(${p.etcd.members.join(" ")})`);
  ' "$HA_DIR/placement.json")"
}

shards_of() { # host: the shards with a node on it
  local s out=()
  for s in "${!SHARD_PAIR[@]}"; do [[ " ${SHARD_PAIR[$s]} " == *" $1 "* ]] && out+=("$s"); done
  echo "${out[*]}"
}
other_node() { # shard host: the shard's other node
  local n
  for n in ${SHARD_PAIR[$1]}; do [[ $n != "$2" ]] && echo "$n"; done
}

# ---- files ------------------------------------------------------------------------------------

ha_render() { # secrets_file local_conf: render.mjs for every host, then what the packages would have made
  local secrets=$1 localconf=$2 h
  rm -rf "$FS" "$WORK/tls"
  mkdir -p "$FS"
  # The watchdog is off: /dev/watchdog would reset this whole machine, not a namespace.
  indented node "$HA_DIR/render.mjs" --out "$FS" --fs-root "$FS" --secrets "$secrets" --topology "$TOPOLOGY" \
    --watchdog off --local-conf "$localconf" || fail "render.mjs failed"
  for h in "${ETCD_MEMBERS[@]}"; do
    install -d -o postgres -g postgres -m 0700 "$FS/$h/var/lib/postgresql" "$FS/$h/var/lib/postgresql/15"
    install -d -o postgres -g postgres -m 0755 "$FS/$h/var/run/postgresql"
    install -d -o etcd -g etcd -m 0700 "$FS/$h/var/lib/etcd"
    chown -R postgres:postgres "$FS/$h/etc/patroni"
  done
  install -d -o postgres -g postgres -m 0750 "$FS/$REPO/var/lib/pgbackrest"
  local -a tls=()
  for h in "${ETCD_MEMBERS[@]}" "$REPO"; do
    install -d -o postgres -g postgres -m 0750 "$FS/$h/var/spool/pgbackrest" "$FS/$h/var/log/pgbackrest" "$FS/$h/tmp/pgbackrest"
    install -d -m 0755 "$FS/$h/etc/pgbackrest/conf.d" "$FS/$h/var/lib/prometheus/node-exporter"
    chown root:postgres "$FS/$h/etc/pgbackrest/pgbackrest.conf"
    tls+=("$h=${ADDR[$h]}")
  done
  indented bash "$HA_DIR/pgbackrest/make-tls.sh" "$WORK/tls" "${tls[@]}" || fail "make-tls.sh failed"
  for h in "${ETCD_MEMBERS[@]}" "$REPO"; do
    install -d -o postgres -g postgres -m 0750 "$FS/$h/etc/pgbackrest/tls"
    install -o postgres -g postgres -m 0644 "$WORK/tls/ca.crt" "$WORK/tls/$h.crt" "$FS/$h/etc/pgbackrest/tls/"
    install -o postgres -g postgres -m 0600 "$WORK/tls/$h.key" "$FS/$h/etc/pgbackrest/tls/"
  done
}

# ---- running things on a host --------------------------------------------------------------

# Environment of every service and tool: the host's pgBackRest config (archive_command,
# restore_command and Patroni's replica method inherit it), nothing of the caller's.
host_env() { # host
  printf '%s\n' "PATH=$PG_BIN:/usr/bin:/bin" LANG=C.UTF-8 "HOME=$FS/$1/var/lib/postgresql" \
    "PGBACKREST_CONFIG=$FS/$1/etc/pgbackrest/pgbackrest.conf" "PGBACKREST_CONFIG_INCLUDE_PATH=$FS/$1/etc/pgbackrest/conf.d"
}

as() { # host user cmd...: in the host's namespace as that user, in the host's environment
  local host=$1 user=$2; shift 2
  local -a env=()
  mapfile -t env < <(host_env "$host")
  ip netns exec "$NS_PREFIX$host" setpriv --reuid="$user" --regid="$user" --init-groups -- env -i "${env[@]}" "$@"
}

ha_start() { # key host user cmd...: a long-running service, its log in LOGS/key.log
  local key=$1 host=$2 user=$3; shift 3
  local -a env=()
  mapfile -t env < <(host_env "$host")
  (exec setsid ip netns exec "$NS_PREFIX$host" setpriv --reuid="$user" --regid="$user" --init-groups -- env -i "${env[@]}" "$@") \
    >>"$LOGS/$key.log" 2>&1 </dev/null 9>&- &
  HA_PIDS[$key]=$!
  disown "$!"
}

unit_exec() { sed -n 's/^ExecStart=//p' "$1" | sed "s/%i/$2/g"; }   # rendered unit, instance

start_etcd() { # host: Debian's etcd.service: /usr/bin/etcd as etcd, EnvironmentFile=/etc/default/etcd
  local host=$1 line
  local -a vars=()
  while IFS= read -r line; do [[ $line =~ ^ETCD_[A-Z0-9_]*= ]] && vars+=("$line"); done <"$FS/$host/etc/default/etcd"
  (exec setsid ip netns exec "$NS_PREFIX$host" setpriv --reuid=etcd --regid=etcd --init-groups -- env -i PATH=/usr/bin:/bin "${vars[@]}" /usr/bin/etcd) \
    >>"$LOGS/etcd-$host.log" 2>&1 </dev/null 9>&- &
  HA_PIDS[etcd-$host]=$!
  disown "$!"
}

start_patroni() { # host shard: bf-patroni@shard<N>.service (User=postgres)
  local -a cmd
  read -r -a cmd <<<"$(unit_exec "$FS/$1/etc/systemd/system/bf-patroni@.service" "shard$2")"
  ha_start "patroni$2-$1" "$1" postgres "${cmd[@]}"
}

start_pgbr_server() { # host: bf-pgbackrest-server.service (the proof keeps postgres as the repository's owner too)
  local -a cmd
  read -r -a cmd <<<"$(unit_exec "$FS/$1/etc/systemd/system/bf-pgbackrest-server.service" "")"
  ha_start "pgbackrest-$1" "$1" postgres "${cmd[@]}"
}

# ---- looking -----------------------------------------------------------------------------------

rest() { # shard host path: HTTP status of that node's Patroni REST API, asked from app1
  ip netns exec "${NS_PREFIX}app1" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://${ADDR[$2]}:${SHARD_REST[$1]}$3" || true
}
is_primary() { [[ $(rest "$1" "$2" /primary) == 200 ]]; }   # shard host
leader_of() { # shard: the node Patroni's REST says is primary (empty when none or two)
  local n found=()
  for n in ${SHARD_PAIR[$1]}; do is_primary "$1" "$n" && found+=("$n"); done
  ((${#found[@]} == 1)) && echo "${found[0]}"
  return 0
}
# A synchronous standby as the leader records it in etcd (only such a member may be
# promoted), asked of the leader: a member cut off from etcd answers from a stale view.
is_sync() { # shard host
  local leader
  leader=$(leader_of "$1")
  [[ -n $leader && $leader != "$2" && $(rest "$1" "$2" /sync) == 200 ]] || return 1
  ip netns exec "${NS_PREFIX}app1" curl -s --max-time 2 "http://${ADDR[$leader]}:${SHARD_REST[$1]}/cluster" |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const m = JSON.parse(s).members.find((x) => x.name === process.argv[1]);
      process.exit(m && m.role === "sync_standby" && m.state !== "stopped" ? 0 : 1); })' "$2"
}
is_home() { [[ $(leader_of "$1") == "${SHARD_HOME[$1]}" ]] && is_sync "$1" "$(other_node "$1" "${SHARD_HOME[$1]}")"; }  # shard as placed

etcd_healthy() {
  local h eps=()
  for h in "${ETCD_MEMBERS[@]}"; do eps+=("http://${ADDR[$h]}:$ETCD_PORT"); done
  ip netns exec "${NS_PREFIX}app1" etcdctl --endpoints="$(IFS=,; echo "${eps[*]}")" --command-timeout=2s endpoint health 2>&1 |
    grep -c 'is healthy' | grep -qx "${#ETCD_MEMBERS[@]}"
}

ha_sql() { # shard host sql: as the superuser over the node's socket, in the engine's database
  as "$2" postgres "$PG_BIN/psql" -h "$FS/$2/var/run/postgresql" -p "${SHARD_PORT[$1]}" -U postgres -d engine -XAtc "$3"
}

patronictl() { # shard host args...
  local shard=$1 host=$2; shift 2
  as "$host" postgres /usr/bin/patronictl -c "$FS/$host/etc/patroni/shard$shard.yml" "$@"
}

cluster_line() { # shard: patronictl list, one line
  patronictl "$1" "$(leader_of "$1" | grep . || echo "${SHARD_HOME[$1]}")" list 2>&1 | grep -E "\| *db[0-9]" | tr -s ' ' | sed 's/^| //; s/ |$//' | paste -sd ';' -
}

postmaster_pid() { head -n 1 "$FS/$2/var/lib/postgresql/15/shard$1/postmaster.pid"; }   # shard host
patroni_log_lines() { cat "$LOGS/patroni$1-$2.log" 2>/dev/null | wc -l; }                # shard host
rewound() { # shard host since_line: did its Patroni run pg_rewind since then?
  tail -n +"$3" "$LOGS/patroni$1-$2.log" | grep -qiE 'pg_rewind|rewind.*(success|done)' && echo yes || echo "no (its WAL had not diverged)"
}

pitr_time() { # epoch ms -> a recovery_target_time PostgreSQL and pgBackRest accept
  date -u -d "@$(awk -v ms="$1" 'BEGIN { printf "%.3f", ms / 1000 }')" '+%Y-%m-%d %H:%M:%S.%3N+00'
}
