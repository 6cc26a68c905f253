// The broker's HTTP API, and the credential the console holds.
//
// The credential lives in sessionStorage: it belongs to this tab, is gone
// when the tab closes, and is never written to a URL the server sees (a
// viewer link carries its token in the fragment, which browsers do not
// send). The page runs no inline script and loads nothing from elsewhere
// (see the Content-Security-Policy), which is what keeps it from being
// read by someone else's code.

const KEY = "agentbroker.credential";

// credential returns {kind: "admin"|"viewer", token, session?} or null.
export function credential() {
  try {
    const c = JSON.parse(sessionStorage.getItem(KEY) || "null");
    return c && typeof c.token === "string" && c.token ? c : null;
  } catch {
    return null;
  }
}

export function setCredential(c) {
  sessionStorage.setItem(KEY, JSON.stringify(c));
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

// ApiError carries the HTTP status and the broker's error description.
export class ApiError extends Error {
  constructor(status, kind, description) {
    super(description || kind || `HTTP ${status}`);
    this.status = status;
    this.kind = kind;
  }
}

// api sends a request with the credential's bearer token and returns the
// decoded JSON body; a non-2xx answer throws an ApiError.
export async function api(method, path, body, token) {
  const tok = token || credential()?.token;
  const headers = { Accept: "application/json" };
  if (tok) headers.Authorization = `Bearer ${tok}`;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: "bad_response", error_description: text.slice(0, 200) };
    }
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, data?.error, data?.error_description || data?.error);
  }
  return data;
}

// What the start form calls each agent and each credential kind. The
// agents themselves come from the broker (agents.json): those it can
// launch, with the catalog agent whose models each may use and the
// credential kinds each accepts.
export const AGENT_TITLES = {
  "claude-code": "Claude Code",
  codex: "Codex",
  "codex-zed": "Codex (Zed's adapter)",
  amp: "Amp",
  gemini: "Gemini CLI",
  opencode: "OpenCode",
  copilot: "Copilot CLI",
  qwen: "Qwen Code",
  custom: "Custom (the broker's --custom-agent)",
};

export const CREDENTIAL_TITLES = {
  "platform-proxy": "The broker's key, through its proxy",
  "api-key": "My API key",
  "oauth-token": "My OAuth token",
  none: "None (the agent needs none)",
};
