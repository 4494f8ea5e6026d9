#!/bin/sh
# Patroni's post_bootstrap (patroni/patroni.yml): runs once, on the member that
# initialized a shard's cluster, as the postgres user, with a superuser connection
# string as $1. It creates what ../postgres/provision.sql creates on a single
# primary: the engine's role (not a superuser) and its database. Patroni itself has
# created the replicator and rewind roles by then. A failure here fails the
# bootstrap: Patroni removes the half-made data directory and tries again.
set -eu
# ENGINE_PG_PASSWORD: the PG password of engine.env (PG_SHARDS), mode 0600, postgres.
. /etc/patroni/bootstrap.env
exec /usr/lib/postgresql/15/bin/psql "$1" -q -v ON_ERROR_STOP=1 \
  -v engine_password="$ENGINE_PG_PASSWORD" -f /etc/patroni/provision.sql
