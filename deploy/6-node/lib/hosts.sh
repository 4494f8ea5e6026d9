# deploy/6-node on one machine: hosts as Linux network namespaces on a bridge, and the
# process bookkeeping every local proof needs. Sourced by deploy-local.sh; it sets no
# options and starts nothing by itself.
#
# The caller sets before using it:
#   SAY_PREFIX   what every line it prints starts with ("deploy:local")
#   NS_PREFIX    namespace and device prefix ("bf-"): host X is namespace ${NS_PREFIX}X,
#                its veth pair ${NS_PREFIX}v-X (bridge side) / eth0 (host side)
#   BRIDGE       the bridge's name
#   EX_SKIP      the exit status meaning "this machine cannot run the proof" (77)
#   PIDS         an associative array: name -> pid of every long-running process started

say() { printf '%s %s\n' "$SAY_PREFIX" "$*"; }
now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
skip() { say "SKIPPED: $*"; say "RESULT SKIPPED (exit $EX_SKIP): the proof did not run on this machine"; exit "$EX_SKIP"; }
fail() { say "FAILED: $*"; exit 1; }
secret() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# ---- preflight -----------------------------------------------------------------------

need_root_and() { # command...: root, and every command present, or the proof is skipped
  [[ $(id -u) == 0 ]] || skip "needs root (network namespaces, veth, a bridge, services run as their own users); run it as root"
  local c
  for c in ip setpriv runuser flock setsid "$@"; do
    command -v "$c" >/dev/null || skip "the '$c' command is missing"
  done
}

# Under the caller's lock: a cleanup removes every ${NS_PREFIX}preflight-* namespace.
preflight_netns() {
  local probe=${NS_PREFIX}preflight-$$ err
  if ! err=$(ip netns add "$probe" 2>&1); then skip "this machine refuses network namespaces: $err"; fi
  if ! err=$( { ip -n "$probe" link add "${NS_PREFIX}pf0" type veth peer name "${NS_PREFIX}pf1" && ip -n "$probe" link add "${NS_PREFIX}pfbr" type bridge; } 2>&1); then
    ip netns del "$probe" 2>/dev/null || true
    skip "network namespaces work but veth/bridge devices are refused: $err"
  fi
  ip netns del "$probe"
}

# ---- the network -------------------------------------------------------------------------

setup_network() { # bridge_address_or_empty name=address...
  local bridge_addr=$1 pair name addr ns
  shift
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" type bridge stp_state 0
  [[ -n $bridge_addr ]] && ip addr add "$bridge_addr/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for pair in "$@"; do
    name=${pair%%=*} addr=${pair#*=} ns=$NS_PREFIX$name
    ip netns add "$ns"
    ip link add "${NS_PREFIX}v-$name" type veth peer name "${NS_PREFIX}p-$name"
    ip link set "${NS_PREFIX}p-$name" netns "$ns"
    ip -n "$ns" link set "${NS_PREFIX}p-$name" name eth0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip link set "${NS_PREFIX}v-$name" master "$BRIDGE"
    ip link set "${NS_PREFIX}v-$name" up
  done
  # No default route anywhere: a namespace reaches its peers on the bridge and nothing else.
}

link_down() { ip link set "${NS_PREFIX}v-$1" down; }   # host: its cable pulled (no FIN, no RST)
link_up() { ip link set "${NS_PREFIX}v-$1" up; }

our_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^${NS_PREFIX}" || true; }

teardown_network() {
  local ns pid dev
  for ns in $(our_namespaces); do
    # Anything still running inside one of our namespaces was started by the proof.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  sleep 0.3
  for ns in $(our_namespaces); do ip netns del "$ns" 2>/dev/null || true; done
  for dev in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^${NS_PREFIX}v-|^${NS_PREFIX}p-|^$BRIDGE$" || true); do
    ip link del "$dev" 2>/dev/null || true
  done
}

network_left() { [[ -n $(our_namespaces) ]] || ip link show "$BRIDGE" >/dev/null 2>&1; }

# ---- processes ---------------------------------------------------------------------------

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
  # A service's children share its process group (setsid): none may outlive it.
  kill -KILL -- "-$pid" 2>/dev/null || true
}

# Run a command in the foreground but stay interruptible: a trapped signal interrupts
# `wait` at once, where it would otherwise wait for the command to finish.
FG_PID=
run_fg() {
  "$@" 9>&- &
  FG_PID=$!
  local rc=0
  wait "$FG_PID" || rc=$?
  FG_PID=
  return "$rc"
}

wait_until() { # timeout_s what cmd...: poll every 0.2 s; fail naming what did not happen
  local timeout=$1 what=$2 t0
  shift 2
  t0=$(now_ms)
  until "$@" >/dev/null 2>&1; do
    (($(now_ms) - t0 < timeout * 1000)) || fail "$what: not within ${timeout} s"
    sleep 0.2
  done
}

indented() { # cmd...: run, print its output indented, keep its exit status
  local out rc=0
  out=$(mktemp)
  "$@" >"$out" 2>&1 || rc=$?
  sed 's/^/    /' "$out"
  rm -f "$out"
  return "$rc"
}
