# examples/lib.sh: the proof of end-to-end tool use with a real agent,
# shared by the per-agent scripts, which set before sourcing it:
#   name      the example's name            profile   the broker's profile
#   adapter   the npm package@version       entry     its entry point under node_modules
#             (or no adapter: `agentbroker agents install <profile>` installs it)
#   model     the model to ask for          key_env   the broker's platform-key variable
#   upstream_env  the broker's upstream variable for that provider
# and may define agent_checks, a function of checks of its own on the
# session's events ($ev), run after the common ones.
#
# The broker starts the agent through its API, in platform-proxy mode: the
# agent's model calls go through the broker's inference proxy to a scripted
# model upstream on loopback (internal/fakemodel), which asks for our MCP
# tool get_task and then quotes its result. The script checks, from the
# broker's own records (the session's event log), that the agent reached
# /mcp with this session's token, called the tool with it, that the proxy
# saw and allowed the model calls, and that the final reply carries a value
# that exists only in the task. Then, with a second session's MCP token
# revoked before the prompt, that none of that happens and the broker says so.
#
# Needs go, node, npm and jq, and the npm registry for the first install (into
# examples/.cache, which the scripts own). Exits non-zero on any failed check.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [ -n "${adapter:-}" ]; then install_adapter "$adapter" "$entry"; else install_profile "$profile"; fi
echo "node $(node --version)"

step "start the scripted model upstream"
(cd "$root" && go build -o "$work/fakemodel" ./internal/fakemodel/cmd/fakemodel)
key="platform-key-$RANDOM$RANDOM"
FAKEMODEL_API_KEY=$key "$work/fakemodel" --tool get_task --prompt '(tsk_[a-z0-9]+)' --args '{"id":"$1"}' \
  --reply 'The task says: ' >"$work/fake.url" 2>"$work/fake.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/fake.url" ] && break; sleep 0.1; done
upstream=$(head -1 "$work/fake.url")
echo "upstream $upstream"

step "start the broker"
start_broker "$key_env=$key" "$upstream_env=$upstream" -- --agents-dir "$agents"

step "a project whose task holds a value that exists nowhere else"
marker="MARKER-$RANDOM-$RANDOM"
project=$(ab project create --name "$name-example" --instructions "Look tasks up with the project's tools.")
task=$(ab task add --project "$project" --title "Find the marker" --description "The marker is $marker.")
echo "project $project, task $task"
mkdir -p "$work/cwd"
prompt="Look up task $task with the get_task tool and tell me what it says."
start_session() {
  ab session start --project "$project" --agent "$profile" --model "$model" \
    --credential platform-proxy --policy allow-project-tools --cwd "$work/cwd"
}

step "start a $profile session through the broker's API (platform proxy), and prompt it"
session=$(start_session)
mcp_token=$(mcp_token_id "$session")
reply=$(ab session prompt "$session" "$prompt") || true
echo "session $session; reply: $reply"
ab session stop "$session" >/dev/null || true
ab session events "$session" >"$work/events.jsonl"

cp "$work/fake.log" /tmp/fake.log; cp -r "$work/data-sessions" /tmp/ds 2>/dev/null; step "checks"
ev=$work/events.jsonl
check_confined "$ev"
check "the session's MCP config was recorded before launch (token id $mcp_token)" test -n "$mcp_token"
check "the agent reached /mcp with this session's token (tools/list)" test "$(count "$ev" '"type":"mcp_connected"')" -ge 1
check "the agent called get_task through MCP with this session's token, and it succeeded" \
  test "$(count "$ev" '"type":"tool_call_mcp"' '"tool":"get_task"' '"outcome":"ok"' "\"token_id\":\"$mcp_token\"")" -ge 1
check "the proxy saw the model calls and allowed them" \
  test "$(count "$ev" '"type":"usage"' "\"model\":\"$model\"" '"outcome":"ok"')" -ge 1
check "the proxy refused none of them" test "$(count "$ev" '"type":"usage"' '"outcome":"refused"')" -eq 0
# The session's inference token names its model: the proxy allows that model
# and the agent's declared side models (the catalog's picker lists them).
catalog_agent=$profile; [ "$profile" = codex-zed ] && catalog_agent=codex
allowed=("$model" $(ab catalog list --agent "$catalog_agent" --json |
  jq -r --arg m "$model" '.[] | select(.id == $m) | .side_models[].id'))
others=$(grep -F '"type":"usage"' "$ev" | grep -o '"model":"[^"]*"' | sort -u |
  grep -v -x -F -f <(printf '"model":"%s"\n' "${allowed[@]}") || true)
check "every model call was $model or a declared side model (${allowed[*]:1}), none other: ${others:-none}" test -z "$others"
check "no model was refused silently or otherwise (no model_refused event)" \
  test "$(count "$ev" '"type":"model_refused"')" -eq 0
if [ "${asks_permission:-0}" = 1 ]; then
  # The agent asks before it runs an MCP tool: the profile recognises our
  # own tool in that agent's request, so the policy answers, nobody waits.
  check "the agent asked before get_task and the policy recognised our tool (allow-project-tools)" \
    test "$(count "$ev" '"type":"permission_answer"' 'policy allow-project-tools: our MCP tool' '"outcome":"selected"')" -ge 1
  check "no permission request was left to a person" test "$(count "$ev" '"type":"permission_request"')" -eq 0
fi
check "the final reply contains the task's marker" grep -q -- "$marker" <<<"$reply"
# Codex prefixes every reply with "Warning: Model metadata for `M` not found"
# when its own catalog lacks the model; the broker's config must fill it in.
check "the agent did not warn about missing model metadata" \
  test "$(grep -ciE 'model metadata|fallback metadata' <<<"$reply" || true)" -eq 0
check "the session recorded no warning about the agent's model catalog" \
  test "$(count "$ev" '"type":"warning"' 'model catalog' || true)" -eq 0
check "the scripted upstream never saw the inference token (it accepts only the platform key)" \
  test "$(grep -c 'status=401' "$work/fake.log" || true)" -eq 0
check "every request the upstream got carried the platform key and nothing else (its log: auth_ok)" \
  test "$(grep -c 'auth_ok=true' "$work/fake.log" || true)" -ge 1 -a "$(grep -c 'auth_ok=false' "$work/fake.log" || true)" -eq 0
# An example may define agent_checks, run here on the same records ($ev).
if declare -F agent_checks >/dev/null; then agent_checks; fi

step "negative check: the session's MCP token revoked before the prompt"
session2=$(start_session)
ab token revoke --jti "$(mcp_token_id "$session2")" >/dev/null
reply2=$(ab session prompt "$session2" "$prompt") || true
echo "reply: $reply2"
ab session stop "$session2" >/dev/null || true
ab session events "$session2" >"$work/events2.jsonl"
ev2=$work/events2.jsonl
check "no tool call succeeded with the revoked token" test "$(count "$ev2" '"type":"tool_call_mcp"' '"outcome":"ok"')" -eq 0
check "the reply does not carry the task's marker" test "$(grep -c -- "$marker" <<<"$reply2" || true)" -eq 0
check "the broker reports the session's MCP connection as failed" test "$(count "$ev2" '"type":"mcp_auth_failed"')" -ge 1
if [ -n "${AGENTBROKER_EXAMPLES_ARTIFACTS:-}" ]; then
  mkdir -p "$AGENTBROKER_EXAMPLES_ARTIFACTS" && cp "$ev" "$AGENTBROKER_EXAMPLES_ARTIFACTS/$name-events.jsonl" &&
    cp "$ev2" "$AGENTBROKER_EXAMPLES_ARTIFACTS/$name-events-revoked.jsonl"
fi
finish
