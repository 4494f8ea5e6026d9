#!/usr/bin/env bash
# A restore drill of one shard (RUNBOOK-HA.md §6): restores the shard's backups and WAL
# to a chosen time into a scratch directory on this host, starts that copy on a socket
# of its own, waits until it reached the target and was promoted, and judges it with
# restore-check (tools/ops/restore-check.ts) against the live shard: the copy keeps the
# engine's invariants, holds every row the live shard acknowledged before the target and
# none it never had. Then it stops the copy and removes the directory (unless --keep).
#
# Where: a db host that does not hold the shard (db3 for shard 0, db1 for 1, db2 for 2),
# as root or postgres; what runs, runs as postgres. Its pgBackRest configuration reaches
# the repository; the shard's stanza needs no section there, the data directory is on
# the command line. pgBackRest is given no --config: PGBACKREST_CONFIG and
# PGBACKREST_CONFIG_INCLUDE_PATH from the environment apply when set (to pgBackRest here
# and to the copy's restore_command). restore-check needs Node and the release (by
# default /opt/bf-engine; --check or BF_RESTORE_CHECK name another command).
#
# The copy listens on no TCP address (listen_addresses empty), only on a socket in its
# own directory, and its pg_hba.conf admits the local postgres user alone: nothing can
# mistake it for the shard. archive_mode is off (it must not write a new timeline into
# the live shard's archive) and synchronous_standby_names empty (it has no standby).
#
# usage: restore-drill.sh --shard N --target 'YYYY-MM-DD HH:MM:SS[.mmm]+00' --live URL
#          [--dir DIR] [--port 5439] [--pg-bin DIR] [--check CMD] [--db NAME]
#          [--slack-s 5] [--wait-s 3600] [--shared-buffers 256MB] [--keep]
# --live: the shard's URL as the engine has it (one or both hosts; a password may come
#   from PGPASSWORD instead). --dir: an absolute path that does not exist or is empty
#   (default /var/lib/postgresql/15/restore-shard<N>); it is deleted afterwards.
# exit: restore-check's (0 the copy is faithful, 1 it is not, 3 it could not be read),
#   2 usage, 4 no copy to check (the restore, the start or the promotion failed).
set -uo pipefail

EX_USAGE=2
EX_NO_COPY=4
USAGE="usage: restore-drill.sh --shard N --target 'YYYY-MM-DD HH:MM:SS[.mmm]+00' --live URL
         [--dir DIR] [--port 5439] [--pg-bin DIR] [--check CMD] [--db NAME]
         [--slack-s 5] [--wait-s 3600] [--shared-buffers 256MB] [--keep]"

say() { printf 'restore-drill: %s\n' "$*"; }
usage_error() { printf 'restore-drill: %s\n%s\n' "$1" "$USAGE" >&2; exit "$EX_USAGE"; }

SHARD='' TARGET='' LIVE='' DIR='' PORT=5439 PG_BIN='' DB='' SLACK_S=5 WAIT_S=3600 SHARED_BUFFERS=256MB KEEP=no
CHECK=${BF_RESTORE_CHECK:-node /opt/bf-engine/dist/tools/ops/restore-check.js}

while (($#)); do
  case $1 in
    -h|--help) printf '%s\n' "$USAGE"; exit 0 ;;
    --keep) KEEP=yes; shift; continue ;;
    --shard|--target|--live|--dir|--port|--pg-bin|--check|--db|--slack-s|--wait-s|--shared-buffers)
      (($# >= 2)) || usage_error "$1 needs a value" ;;
    *) usage_error "unknown argument $1" ;;
  esac
  case $1 in
    --shard) SHARD=$2 ;; --target) TARGET=$2 ;; --live) LIVE=$2 ;; --dir) DIR=$2 ;; --port) PORT=$2 ;;
    --pg-bin) PG_BIN=$2 ;; --check) CHECK=$2 ;; --db) DB=$2 ;; --slack-s) SLACK_S=$2 ;; --wait-s) WAIT_S=$2 ;;
    --shared-buffers) SHARED_BUFFERS=$2 ;;
  esac
  shift 2
done

[[ $SHARD =~ ^[0-9]{1,2}$ ]] || usage_error "--shard must be a shard number"
# The form pgBackRest parses to choose the backup set before the target (with a T or a Z
# it could not, and would restore from the latest backup, which may end after the target).
[[ $TARGET =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?[+-][0-9]{2}(:?[0-9]{2})?$ ]] ||
  usage_error "--target must be 'YYYY-MM-DD HH:MM:SS[.mmm]+HH' (with its zone)"
[[ $LIVE =~ ^postgres(ql)?:// ]] || usage_error "--live must be the shard's postgres:// URL"
[[ $PORT =~ ^[0-9]{1,5}$ ]] && ((PORT >= 1024 && PORT <= 65535)) || usage_error "--port must be in 1024..65535"
[[ $SLACK_S =~ ^[0-9]{1,4}$ ]] || usage_error "--slack-s must be a number of seconds"
[[ $WAIT_S =~ ^[0-9]{1,6}$ ]] && ((WAIT_S > 0)) || usage_error "--wait-s must be a positive number of seconds"
[[ $SHARED_BUFFERS =~ ^[0-9]+(kB|MB|GB)$ ]] || usage_error "--shared-buffers must be a size such as 256MB"
DIR=${DIR:-/var/lib/postgresql/15/restore-shard$SHARD}
# pg_ctl passes the server options through a shell: a plain absolute path only.
[[ $DIR =~ ^/[A-Za-z0-9._/-]+$ && $DIR != */ ]] || usage_error "--dir must be an absolute path of letters, digits, . _ - and /"
# Deleted afterwards: never a directory that holds anything.
[[ ! -e $DIR || (-d $DIR && -z $(ls -A "$DIR" 2>/dev/null)) ]] || usage_error "--dir $DIR exists and is not empty"
if [[ -z $DB ]]; then
  DB=${LIVE%%\?*}
  DB=${DB##*/}
fi
[[ $DB =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || usage_error "--db: no database name in --live; give --db NAME"
read -ra CHECK_CMD <<<"$CHECK"
((${#CHECK_CMD[@]})) || usage_error "--check must name a command"
if [[ -z $PG_BIN ]]; then
  if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then PG_BIN=/usr/lib/postgresql/15/bin
  else PG_BIN=$(dirname "$(command -v pg_ctl || echo /nonexistent/pg_ctl)"); fi
fi
[[ -x $PG_BIN/pg_ctl && -x $PG_BIN/psql ]] || usage_error "no pg_ctl and psql in ${PG_BIN} (--pg-bin)"
command -v pgbackrest >/dev/null || usage_error "pgbackrest is not installed"
if ((EUID == 0)); then
  PG_HOME=$(getent passwd postgres | cut -d: -f6)
  [[ -n $PG_HOME ]] || usage_error "there is no postgres user"
elif [[ $(id -un) != postgres ]]; then
  usage_error "run as root or postgres"
fi

# Runs a command as postgres, from / (root's working directory is not postgres's).
as_pg() {
  if ((EUID == 0)); then
    (cd / && exec setpriv --reuid=postgres --regid=postgres --init-groups -- env HOME="$PG_HOME" "$@")
  else
    (cd / && exec "$@")
  fi
}

STARTED=no
cleanup() {
  if [[ $STARTED == yes && $KEEP == no ]]; then
    as_pg "$PG_BIN/pg_ctl" -D "$DIR" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_pg "$PG_BIN/pg_ctl" -D "$DIR" -m immediate -w -t 30 stop >/dev/null 2>&1
  fi
  if [[ $KEEP == no && -d $DIR ]]; then rm -rf -- "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

no_copy() { # what, then the end of the copy's log
  say "FAILED: $1"
  [[ -s ${LOG:-} ]] && tail -n 20 "$LOG" | sed 's/^/    /'
  say "RESULT restore-drill shard $SHARD: no copy to check (exit $EX_NO_COPY)"
  exit "$EX_NO_COPY"
}

if ((EUID == 0)); then install -d -o postgres -g postgres -m 0700 "$DIR" || no_copy "cannot create $DIR"
else install -d -m 0700 "$DIR" || no_copy "cannot create $DIR"; fi
LOG=$(mktemp "${TMPDIR:-/tmp}/restore-drill-shard$SHARD.XXXXXX.log") || no_copy "cannot create a log file"
((EUID == 0)) && chown postgres: "$LOG"

t0=$(date +%s)
say "shard $SHARD to $TARGET: pgbackrest restore into $DIR"
as_pg pgbackrest --stanza="bf-shard$SHARD" --pg1-path="$DIR" --type=time --target="$TARGET" \
  --target-action=promote --target-timeline=latest --archive-mode=off --log-level-console=info restore 2>&1 |
  sed 's/^/    /'
((PIPESTATUS[0] == 0)) || no_copy "pgbackrest restore failed"
t_restored=$(date +%s)

printf '# restore-drill: the local postgres user only, by peer\nlocal all postgres peer\n' >"$DIR/restore-drill-hba.conf"
((EUID == 0)) && chown postgres: "$DIR/restore-drill-hba.conf"
say "starting the copy (socket $DIR/.s.PGSQL.$PORT, no TCP), log $LOG"
STARTED=yes
as_pg "$PG_BIN/pg_ctl" -D "$DIR" -l "$LOG" -W start \
  -o "-c port=$PORT -c listen_addresses='' -c unix_socket_directories=$DIR -c synchronous_standby_names='' -c archive_mode=off -c hba_file=$DIR/restore-drill-hba.conf -c shared_buffers=$SHARED_BUFFERS -c cluster_name=restore-drill-shard$SHARD" \
  >/dev/null || no_copy "pg_ctl start failed"

# Replaying WAL up to the target, then promoted (--target-action=promote): bounded.
deadline=$(($(date +%s) + WAIT_S))
until [[ $(as_pg timeout 10 "$PG_BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d "$DB" -XAtc 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]; do
  sleep 1 # first: the postmaster writes its pid file a moment after pg_ctl -W returns
  as_pg "$PG_BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1 || no_copy "the copy stopped before it was promoted"
  (($(date +%s) < deadline)) || no_copy "not promoted within $WAIT_S s"
done
t_promoted=$(date +%s)
say "restored in $((t_restored - t0)) s, replayed and promoted in $((t_promoted - t_restored)) s: $(grep -E 'recovery stopping|selected new timeline' "$LOG" | sed 's/^.*LOG: *//' | paste -sd ';' -)"

as_pg "${CHECK_CMD[@]}" --restored "postgres://postgres@/$DB?host=$DIR&port=$PORT" --live "$LIVE" --target "$TARGET" \
  --shard "$SHARD" --slack-s "$SLACK_S"
status=$?
case $status in
  0) verdict=PASS ;; 1) verdict='FAIL (the copy is not faithful)' ;; 3) verdict='FAIL (restore-check could not read a database)' ;;
  *) verdict="FAIL (restore-check exit $status)" ;;
esac
if [[ $KEEP == yes ]]; then
  say "kept: psql -h $DIR -p $PORT -U postgres -d $DB (as postgres); stop: $PG_BIN/pg_ctl -D $DIR stop, then rm -rf $DIR"
fi
say "RESULT restore-drill shard $SHARD target '$TARGET': $verdict"
exit "$status"
