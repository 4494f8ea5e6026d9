#!/usr/bin/env bash
# The HA figures Prometheus alerts on (../../prometheus/rules-ha.yml), written for
# node_exporter's textfile collector (bf-ha-metrics.timer, every 30 s, and after
# each backup). What it reads depends on the host's pgbackrest.conf:
#   db host (stanzas with pg1-port): per local PostgreSQL instance, pg_stat_archiver
#     and, on a primary, pg_stat_replication (superuser over the local socket, peer);
#   repository host (repo1-path set): `pgbackrest info`, the last backup of each type
#     per shard.
# Patroni's own /metrics (role, sync standby, WAL positions) and etcd's are scraped
# directly; this covers what neither exports.
#
# env: BF_HA_TEXTFILE_DIR (default /var/lib/prometheus/node-exporter), BF_HA_MEMBER
#      (default: the short host name), PGBACKREST_CONFIG, PG_BIN.
# usage: bf-ha-metrics.sh [--stdout]
set -uo pipefail
conf=${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
dir=${BF_HA_TEXTFILE_DIR:-/var/lib/prometheus/node-exporter}
member=${BF_HA_MEMBER:-$(hostname -s)}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

ini() { # section key: a value of pgbackrest.conf
  awk -v s="[$1]" -v k="$2" '/^\[/ { in_s = ($0 == s) } in_s && index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }' "$conf"
}
help_type() { printf '# HELP %s %s\n# TYPE %s %s\n' "$1" "$3" "$1" "$2" >>"$out"; }

db_host() {
  local stanza shard port sock row up
  help_type bf_ha_pg_up gauge "1 if the local PostgreSQL instance of the shard answered the collector"
  help_type bf_ha_pg_in_recovery gauge "1 on a standby, 0 on the primary"
  help_type bf_ha_archive_archived_total counter "WAL files this instance archived (pg_stat_archiver)"
  help_type bf_ha_archive_failed_total counter "failed archive_command runs (pg_stat_archiver)"
  help_type bf_ha_archive_last_archived_timestamp_seconds gauge "when this instance last archived a WAL file"
  help_type bf_ha_archive_last_failed_timestamp_seconds gauge "when archive_command last failed here (0: never)"
  help_type bf_ha_replication_sync_standbys gauge "synchronous standbys streaming from this primary"
  help_type bf_ha_replication_streaming_standbys gauge "standbys streaming from this primary"
  help_type bf_ha_replication_lag_bytes gauge "WAL the slowest standby has yet to replay, on the primary"
  for stanza in $(sed -n 's/^\[\(bf-shard[0-9]*\)\]$/\1/p' "$conf"); do
    shard=${stanza#bf-shard} port=$(ini "$stanza" pg1-port) sock=$(ini "$stanza" pg1-socket-path)
    row=$(PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -h "${sock:-/var/run/postgresql}" -p "${port:-5432}" -U postgres -d postgres -XAtF ' ' -c "
      SELECT pg_is_in_recovery()::int, a.archived_count, a.failed_count,
             coalesce(extract(epoch FROM a.last_archived_time), 0)::bigint,
             coalesce(extract(epoch FROM a.last_failed_time), 0)::bigint,
             (SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'),
             (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'),
             CASE WHEN pg_is_in_recovery() THEN 0
                  ELSE coalesce((SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)) FROM pg_stat_replication), 0)::bigint END
      FROM pg_stat_archiver a" 2>/dev/null) && up=1 || up=0
    local l="shard=\"$shard\",member=\"$member\""
    echo "bf_ha_pg_up{$l} $up" >>"$out"
    ((up)) || continue
    read -r rec archived failed last_ok last_fail sync streaming lag <<<"$row"
    {
      echo "bf_ha_pg_in_recovery{$l} $rec"
      echo "bf_ha_archive_archived_total{$l} $archived"
      echo "bf_ha_archive_failed_total{$l} $failed"
      echo "bf_ha_archive_last_archived_timestamp_seconds{$l} $last_ok"
      echo "bf_ha_archive_last_failed_timestamp_seconds{$l} $last_fail"
      if ((rec == 0)); then
        echo "bf_ha_replication_sync_standbys{$l} $sync"
        echo "bf_ha_replication_streaming_standbys{$l} $streaming"
        echo "bf_ha_replication_lag_bytes{$l} $lag"
      fi
    } >>"$out"
  done
}

repo_host() {
  local json
  help_type bf_ha_backup_info_ok gauge "1 if pgbackrest info reports the shard's stanza as ok"
  help_type bf_ha_backup_last_completion_timestamp_seconds gauge "when the last backup of this type of the shard completed"
  help_type bf_ha_backups gauge "backups of the shard in the repository"
  json=$(pgbackrest info --output=json 2>/dev/null) || json='[]'
  node -e '
    const [json, member] = process.argv.slice(1);
    for (const s of JSON.parse(json)) {
      const shard = String(s.name).replace(/^bf-shard/, "");
      const l = `shard="${shard}",member="${member}"`;
      console.log(`bf_ha_backup_info_ok{${l}} ${s.status?.code === 0 ? 1 : 0}`);
      console.log(`bf_ha_backups{${l}} ${(s.backup ?? []).length}`);
      const last = {};
      for (const b of s.backup ?? []) if (!b.error) last[b.type] = Math.max(last[b.type] ?? 0, b.timestamp.stop);
      for (const [type, t] of Object.entries(last)) console.log(`bf_ha_backup_last_completion_timestamp_seconds{${l},type="${type}"} ${t}`);
    }' "$json" "$member" >>"$out"
}

if [[ -n $(ini global repo1-path) ]]; then repo_host; else db_host; fi
help_type bf_ha_metrics_last_run_timestamp_seconds gauge "when the collector last ran"
echo "bf_ha_metrics_last_run_timestamp_seconds{member=\"$member\"} $(date +%s)" >>"$out"

if [[ ${1:-} == --stdout ]]; then cat "$out"; exit 0; fi
# Atomically, so node_exporter never reads half a file.
install -m 0644 "$out" "$dir/bf-ha.prom.$$" && mv -f "$dir/bf-ha.prom.$$" "$dir/bf-ha.prom"
