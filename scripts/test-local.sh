#!/usr/bin/env bash
# npm run test:local: the suite as a contributor without root or Chromium can run it.
# It leaves out only the test files this machine cannot run, says which and why at the
# start and again at the end, and runs everything else exactly as `npm test` does (CI
# runs `npm test`, the whole suite, as root with Chromium installed):
#   test/deploy-proof.test.ts  when not root: the six-host proof builds network namespaces (and installs
#                              Patroni, etcd and pgBackRest with apt-get when they are missing)
#   test/dashboard.test.ts     when /usr/bin/chromium is missing: the dashboard in a real browser
# Files are left out with tap's --exclude, never skipped inside a test. Arguments are
# passed to tap (e.g. --reporter=terse).
set -uo pipefail
cd "$(dirname "$0")/.."

left_out=()   # "file|why"
if [ "$(id -u)" != 0 ]; then
  left_out+=("test/deploy-proof.test.ts|needs root (network namespaces and apt-get for the six-host deploy proof with its HA layer, deploy/6-node/deploy-local.sh)")
fi
if [ ! -x /usr/bin/chromium ]; then
  left_out+=("test/dashboard.test.ts|needs /usr/bin/chromium (the live dashboard driven in a real headless browser)")
fi

say() { printf 'test:local: %s\n' "$*" >&2; }
tell() {
  if [ ${#left_out[@]} -eq 0 ]; then
    say "$1 nothing: this machine runs the whole suite (as npm test does)"
    return
  fi
  say "$1 ${#left_out[@]} test file(s) that this machine cannot run; npm test (CI) runs them:"
  for entry in ${left_out[@]+"${left_out[@]}"}; do say "  ${entry%%|*}: ${entry#*|}"; done
}

tell "leaving out"
npm install --no-audit --no-fund --loglevel=error || exit $?
# Postgres and Redis are needed by every other test; Chromium only by the file left out.
bash scripts/system-packages.sh postgres redis || exit $?
npm run build || exit $?

excludes=()
for entry in ${left_out[@]+"${left_out[@]}"}; do excludes+=("--exclude=${entry%%|*}"); done
npx tap ${excludes[@]+"${excludes[@]}"} "$@"
code=$?
tell "left out"
exit $code
