#!/usr/bin/env bash
# Makes sure the machine has the system programs `npm start` / `npm test` need:
#   postgres  (initdb, pg_ctl: the three local shards)
#   redis     (redis-server)
#   chromium  (/usr/bin/chromium: the dashboard test drives it with playwright-core)
#   wrk       (the bench's second, cheaper load generator)
#   promtool  (/usr/bin/promtool, Debian package prometheus: the metrics test checks /metrics and the alert rules)
# As root on Debian/Ubuntu it installs what is missing with apt-get; otherwise it
# prints the exact command to run and exits 1. Usage: system-packages.sh postgres redis chromium wrk promtool
set -euo pipefail

missing=()
for want in "$@"; do
  case "$want" in
    postgres) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing+=(postgresql) ;;
    redis) command -v redis-server >/dev/null 2>&1 || missing+=(redis-server) ;;
    chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
    wrk) command -v wrk >/dev/null 2>&1 || missing+=(wrk) ;;
    promtool) [ -x /usr/bin/promtool ] || missing+=(prometheus) ;;
    *) echo "system-packages: unknown package '$want'" >&2; exit 2 ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-packages: installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "system-packages: missing ${missing[*]}. Install with:" >&2
echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
exit 1
