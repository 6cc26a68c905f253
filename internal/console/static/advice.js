// What to do about a failed session, from what the broker recorded.

const RULES = [
  [/not installed|no such file|executable file not found|ENOENT|cannot find module/i,
    "The agent's program could not be found: install it where the broker runs (see the README's agents section), or point the broker at it, then start a new session."],
  [/api[_ -]?key|unauthori[sz]ed|401|credential|oauth|x-api-key/i,
    "The agent was refused by its model provider: check the credential the session used (or the broker's key for its proxy), then start a new session."],
  [/handshake|initialize|closed its output|EOF|exit(ed)? (status|code)/i,
    "The agent exited before it was ready: the broker's log has its error output. Check that the agent runs on its own in the working directory, then start a new session."],
  [/cwd|working directory|permission denied|confine/i,
    "The agent could not work in its directory: check that the directory exists and that the broker's agent user may use it, then start a new session."],
  [/budget/i, "The session's budget ran out: start a new session with a larger budget."],
];

export function adviceFor(why, agent) {
  for (const [re, text] of RULES) if (re.test(why || "")) return `What to do: ${text}`;
  return `What to do: read the broker's log for this session${agent ? ` (agent ${agent})` : ""}, fix the cause, then start a new session.`;
}
