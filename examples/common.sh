# examples/common.sh: what every example script shares. Set `name` (the
# example's name, for the headings) before sourcing it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# As root, agents run as nobody, who must reach the adapters: the checkout
# may sit under a private directory (/root), so the cache goes elsewhere.
default_cache=$root/examples/.cache
[ "$(id -u)" -eq 0 ] && default_cache=/var/cache/agentbroker-examples
cache=${AGENTBROKER_EXAMPLES_CACHE:-$default_cache}
agents=$cache/agents
work=$(mktemp -d)
# The broker confines its agents, and as root runs them as another user
# (nobody): they must reach the broker's binary (the MCP bridge) and their
# working directory, which is theirs to write.
chmod 0755 "$work"
mkdir -m 0777 "$work/cwd"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${EXAMPLES_KEEP_WORK:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail=0

# check NAME COMMAND...: run one check, print it, remember a failure.
check() {
  local what=$1; shift
  if "$@"; then echo "  ok    $what"; else echo "  FAIL  $what"; fail=1; fi
}
step() { printf '\n== %s example: %s\n' "$name" "$*"; }

# install_adapter PACKAGE@VERSION ENTRY: npm-install an agent's adapter into
# the cache the examples own, once.
install_adapter() {
  step "install $1 (into $agents)"
  if [ ! -e "$agents/node_modules/$2" ]; then
    mkdir -p "$agents"
    timeout "${EXAMPLES_INSTALL_TIMEOUT:-900}" npm install --prefix "$agents" --no-audit --no-fund --loglevel=error "$1"
  fi
}

# install_profile PROFILE: install a profile's pinned adapter with the
# broker's own `agents install` (its post-install steps included), once.
install_profile() {
  step "install the $1 adapter with agentbroker agents install (into $agents)"
  (cd "$root" && go build -o "$work/agentbroker" ./cmd/agentbroker)
  mkdir -p "$agents"
  timeout "${EXAMPLES_INSTALL_TIMEOUT:-900}" "$work/agentbroker" agents install --agents-dir "$agents" "$1"
  "$work/agentbroker" agents list --agents-dir "$agents" | grep -E "^(PROFILE|$1 )"
}

ab() { "$work/agentbroker" "$@"; }

# start_broker [KEY=VALUE...] [-- SERVE-FLAGS...]: build and start a broker
# on a free loopback port with a fresh data directory, and point the CLI at
# that directory: the broker writes its URL there (broker-url), next to the
# admin token, and the CLI finds both.
start_broker() {
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  (cd "$root" && go build -o "$work/agentbroker" ./cmd/agentbroker)
  env "${envs[@]}" "$work/agentbroker" serve --data-dir "$work/data" --listen 127.0.0.1:0 "$@" 2>"$work/broker.log" &
  pids+=($!)
  for _ in $(seq 100); do
    [ -s "$work/data/broker-url" ] && break
    sleep 0.1
  done
  [ -s "$work/data/broker-url" ] || { echo "the broker did not start"; cat "$work/broker.log"; exit 1; }
  export AGENTBROKER_DATA_DIR=$work/data
  echo "broker $(cat "$work/data/broker-url")"
}

# count FILE PATTERN...: how many lines of FILE contain every PATTERN.
count() {
  local out; out=$(cat "$1"); shift
  for p in "$@"; do out=$(grep -F -- "$p" <<<"$out" || true); done
  if [ -n "$out" ]; then wc -l <<<"$out"; else echo 0; fi
}

# mcp_token_id SESSION: the session's MCP token ID, from its config event.
mcp_token_id() {
  ab session events "$1" | grep -F '"type":"config"' | grep -o '"token_id":"[^"]*"' | head -1 | sed 's/.*:"//; s/"$//'
}

# finish: exit 1 (with the broker's log) if a check failed.
finish() {
  if [ "$fail" -ne 0 ]; then echo; echo "broker log:"; tail -40 "$work/broker.log" 2>/dev/null; exit 1; fi
  echo; echo "$name example: all checks passed"
}

# check_confined EVENTS: the session's agent ran confined (Landlock), as
# the broker recorded it.
check_confined() {
  check "the agent ran confined (the session's record: sandbox on, Landlock)" \
    test "$(count "$1" '"type":"config"' '"sandbox":"on: landlock ABI')" -ge 1
}
