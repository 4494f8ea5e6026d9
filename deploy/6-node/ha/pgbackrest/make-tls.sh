#!/usr/bin/env bash
# The certificates pgBackRest's TLS servers and clients use (no SSH between the db
# hosts and the repository host): one private CA, and per host one key and one
# certificate whose CN is the host's name (what tls-server-auth authorizes) and whose
# subjectAltName holds its address (what the connecting side verifies).
#
# usage: make-tls.sh OUTDIR name=address [name=address ...]
#   e.g. make-tls.sh ./tls db1=10.231.0.21 db2=10.231.0.22 db3=10.231.0.23 app3=10.231.0.13
# Run it once on a trusted machine; copy ca.crt, <host>.crt and <host>.key to
# /etc/pgbackrest/tls/ on that host (key 0600, owned by the user that runs
# pgBackRest there). Keep ca.key offline: it signs a new host's certificate later
# (an existing ca.key in OUTDIR is reused).
set -euo pipefail
(($# >= 2)) || { sed -n '2,13p' "$0" >&2; exit 2; }
out=$1; shift
mkdir -p "$out"
umask 077
if [[ ! -f $out/ca.key ]]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=bf-engine pgbackrest CA" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
fi
for pair in "$@"; do
  name=${pair%%=*} addr=${pair#*=}
  [[ $name && $addr && $name != "$pair" ]] || { echo "make-tls: expected name=address, got '$pair'" >&2; exit 2; }
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$name" -keyout "$out/$name.key" -out "$out/$name.csr" 2>/dev/null
  # pgBackRest (2.45) matches the host it connects to against the DNS names only: the
  # address is listed as a DNS name too.
  printf 'subjectAltName = IP:%s, DNS:%s, DNS:%s\nextendedKeyUsage = serverAuth, clientAuth\n' "$addr" "$addr" "$name" >"$out/$name.ext"
  openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days 825 -extfile "$out/$name.ext" -out "$out/$name.crt" 2>/dev/null
  rm -f "$out/$name.csr" "$out/$name.ext"
done
chmod 0644 "$out"/*.crt
