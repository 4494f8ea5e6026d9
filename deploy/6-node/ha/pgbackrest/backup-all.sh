#!/usr/bin/env bash
# A backup of every shard, one after the other (repository host; run by
# bf-pgbackrest-backup@<type>.service): pgbackrest backup for each stanza of
# pgbackrest.conf, then expire (pgBackRest does it after each backup). One shard
# failing does not stop the others; the exit status says whether all succeeded, and
# BfHaBackupTooOld names the shard that did not.
#
# usage: backup-all.sh full|diff|incr
set -uo pipefail
type=${1:-}
[[ $type == full || $type == diff || $type == incr ]] || { echo "usage: backup-all.sh full|diff|incr" >&2; exit 2; }
conf=${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
mapfile -t stanzas < <(sed -n 's/^\[\(bf-shard[0-9]*\)\]$/\1/p' "$conf")
((${#stanzas[@]})) || { echo "backup-all: no [bf-shardN] stanza in $conf" >&2; exit 1; }
failed=()
for stanza in "${stanzas[@]}"; do
  started=$(date +%s)
  if pgbackrest --stanza="$stanza" --type="$type" backup; then
    echo "backup-all: $stanza $type backup done in $(($(date +%s) - started)) s"
  else
    echo "backup-all: $stanza $type backup FAILED (exit $?)" >&2
    failed+=("$stanza")
  fi
done
((${#failed[@]} == 0)) || { echo "backup-all: failed: ${failed[*]}" >&2; exit 1; }
