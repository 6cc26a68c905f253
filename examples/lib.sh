# examples/lib.sh: the proof of end-to-end tool use with a real agent,
# shared by the per-agent scripts, which set before sourcing it:
#   name      the example's name            profile   the broker's profile
#   adapter   the npm package@version       entry     its entry point under node_modules
#   model     the model to ask for          key_env   the broker's platform-key variable
#   upstream_env  the broker's upstream variable for that provider
#
# The broker starts the agent through its API, in platform-proxy mode: the
# agent's model calls go through the broker's inference proxy to a scripted
# model upstream on loopback (internal/fakemodel), which asks for our MCP
# tool get_task and then quotes its result. The script checks, from the
# broker's own records (the session's event log), that the agent reached
# /mcp with this session's token, called the tool with it, that the proxy
# saw and allowed the model calls, and that the final reply carries a value
# that exists only in the task.
#
# Needs go, node and npm, and the npm registry for the first install (into
# examples/.cache, which the script owns). Exits non-zero on any failed check.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${AGENTBROKER_EXAMPLES_CACHE:-$root/examples/.cache}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail=0
check() { # check NAME COMMAND...: run a check, print it, remember a failure
  local name=$1; shift
  if "$@"; then echo "  ok    $name"; else echo "  FAIL  $name"; fail=1; fi
}
step() { printf '\n== %s example: %s\n' "$name" "$*"; }

step "install $adapter (into $cache/agents)"
agents=$cache/agents
entry=$agents/node_modules/$entry
if [ ! -e "$entry" ]; then
  mkdir -p "$agents"
  timeout "${EXAMPLES_INSTALL_TIMEOUT:-900}" npm install --prefix "$agents" --no-audit --no-fund --loglevel=error "$adapter"
fi
echo "node $(node --version); adapter at $entry"

step "build the broker and the scripted model upstream"
(cd "$root" && go build -o "$work/agentbroker" ./cmd/agentbroker && go build -o "$work/fakemodel" ./internal/fakemodel/cmd/fakemodel)

step "start the scripted model upstream"
key="platform-key-$RANDOM$RANDOM"
FAKEMODEL_API_KEY=$key "$work/fakemodel" --tool get_task --prompt '(tsk_[a-z0-9]+)' --args '{"id":"$1"}' \
  --reply 'The task says: ' >"$work/fake.url" 2>"$work/fake.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/fake.url" ] && break; sleep 0.1; done
upstream=$(head -1 "$work/fake.url")
echo "upstream $upstream"

step "start the broker"
env "$key_env=$key" "$upstream_env=$upstream" "$work/agentbroker" serve \
  --data-dir "$work/data" --listen 127.0.0.1:0 --agents-dir "$agents" 2>"$work/broker.log" &
pids+=($!)
addr=""
for _ in $(seq 100); do
  addr=$(grep -o 'msg=listening addr=127.0.0.1:[0-9]*' "$work/broker.log" | head -1 | sed 's/.*addr=//') || true
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "the broker did not start"; cat "$work/broker.log"; exit 1; }
export AGENTBROKER_URL=http://$addr AGENTBROKER_DATA_DIR=$work/data
ab() { "$work/agentbroker" "$@"; }
echo "broker $AGENTBROKER_URL"

step "a project whose task holds a value that exists nowhere else"
marker="MARKER-$RANDOM-$RANDOM"
project=$(ab project create --name "$name-example" --instructions "Look tasks up with the project's tools.")
task=$(ab task add --project "$project" --title "Find the marker" --description "The marker is $marker.")
echo "project $project, task $task"

step "start a $profile session through the broker's API (platform proxy)"
mkdir -p "$work/cwd"
session=$(ab session start --project "$project" --agent "$profile" --model "$model" \
  --credential platform-proxy --policy allow-project-tools --cwd "$work/cwd")
echo "session $session"

step "prompt it to look the task up"
reply=$(ab session prompt "$session" "Look up task $task with the get_task tool and tell me what it says.") || true
echo "reply: $reply"
ab session stop "$session" >/dev/null || true
ab session events "$session" >"$work/events.jsonl"

step "checks, from the broker's records"
ev() { grep -c "$1" "$work/events.jsonl" || true; }
mcp_token_id=$(grep -o '"token_id":"[^"]*"' "$work/events.jsonl" | head -1 | sed 's/.*:"//; s/"$//')
check "the session's MCP config was recorded before launch (token id $mcp_token_id)" test -n "$mcp_token_id"
check "the agent reached /mcp with this session's token (tools/list)" test "$(ev '"type":"mcp_connected"')" -ge 1
# lines LINE-PATTERN...: events matching every pattern
lines() { local out; out=$(cat "$work/events.jsonl"); for p in "$@"; do out=$(grep -F -- "$p" <<<"$out" || true); done; [ -n "$out" ] && wc -l <<<"$out" || echo 0; }
check "the agent called get_task through MCP with this session's token, and it succeeded" \
  test "$(lines '"type":"tool_call_mcp"' '"tool":"get_task"' '"outcome":"ok"' "\"token_id\":\"$mcp_token_id\"")" -ge 1
check "the proxy saw the model calls and allowed them" \
  test "$(lines '"type":"usage"' "\"model\":\"$model\"" '"outcome":"ok"')" -ge 1
check "the proxy refused none of them" test "$(lines '"type":"usage"' '"outcome":"refused"')" -eq 0
check "the final reply contains the task's marker" grep -q -- "$marker" <<<"$reply"
check "the scripted upstream never saw the inference token (it accepts only the platform key)" \
  test "$(grep -c 'status=401' "$work/fake.log" || true)" -eq 0

step "negative check: the session's MCP token revoked before the prompt"
session2=$(ab session start --project "$project" --agent "$profile" --model "$model" \
  --credential platform-proxy --policy allow-project-tools --cwd "$work/cwd")
info=$(ab session events "$session2" | grep '"type":"config"' | head -1)
mcp2=$(grep -o '"token_id":"[^"]*"' <<<"$info" | head -1 | sed 's/.*:"//; s/"$//')
ab token revoke --jti "$mcp2" >/dev/null
reply2=$(ab session prompt "$session2" "Look up task $task with the get_task tool and tell me what it says.") || true
echo "reply: $reply2"
ab session stop "$session2" >/dev/null || true
ab session events "$session2" >"$work/events2.jsonl"
lines2() { local out; out=$(cat "$work/events2.jsonl"); for p in "$@"; do out=$(grep -F -- "$p" <<<"$out" || true); done; [ -n "$out" ] && wc -l <<<"$out" || echo 0; }
check "no tool call succeeded with the revoked token" test "$(lines2 '"type":"tool_call_mcp"' '"outcome":"ok"')" -eq 0
check "the reply does not carry the task's marker" bash -c "! grep -q -- '$marker' <<<\"\$1\"" _ "$reply2"
check "the broker reports the session's MCP connection as failed" test "$(lines2 '"type":"mcp_auth_failed"')" -ge 1

if [ "$fail" -ne 0 ]; then
  echo; echo "broker log:"; tail -40 "$work/broker.log"; exit 1
fi
echo; echo "$name example: all checks passed"
