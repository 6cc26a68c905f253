// The live view of one session: its events as a person wants to read
// them (streamed text, thinking folded away, tool calls with their status
// and results, plans, permission questions as buttons, usage and cost so
// far, state changes), a prompt box, cancel and stop.
//
// Every event the broker sends becomes exactly one element carrying its
// sequence number (data-seq) inside the event list, so that what was
// rendered can be checked against the log: no gap, no duplicate.
//
// Prompts, cancels, permission answers and stops go over the HTTP API, not
// the WebSocket: each answer (or refusal) then belongs to its action, and
// they work while the socket is reconnecting.

import { api, credential, ApiError } from "./api.js";
import { h, clear, when } from "./dom.js";
import { EventStream } from "./stream.js";

const FINAL = new Set(["stopped", "failed", "interrupted"]);

export function sessionView(main, id, setStatus) {
  const cred = credential();
  const admin = cred.kind === "admin";
  const stateEl = h("span", { class: "badge", id: "state", "data-state": "" }, "…");
  const connEl = h("span", { class: "badge conn", id: "conn", "data-conn": "connecting" }, "connecting");
  const meta = h("dl", { class: "meta" });
  const usageEl = h("p", { class: "usage", id: "usage" }, "No model calls yet.");
  const list = h("ol", { class: "events", id: "events", "aria-label": "Session events", "data-last-seq": "0" });
  const notice = h("p", { class: "notice", id: "session-notice", role: "alert" });
  const promptText = h("textarea", { id: "prompt-text", rows: 3, placeholder: "Ask the agent…" });
  const sendBtn = h("button", { type: "submit", id: "send" }, "Send");
  const cancelBtn = h("button", { type: "button", id: "cancel", class: "secondary" }, "Cancel turn");
  const stopBtn = admin ? h("button", { type: "button", id: "stop", class: "danger" }, "Stop session") : null;
  const form = h("form", { class: "prompt", id: "prompt-form", "aria-label": "Prompt" },
    h("label", { for: "prompt-text" }, "Prompt"), promptText,
    h("div", { class: "buttons" }, sendBtn, cancelBtn, stopBtn));
  const shareBox = admin ? viewerLink(id) : null;

  clear(main).append(
    h("h1", { tabindex: -1 }, "Session ", h("code", {}, id)),
    h("p", { class: "status-line", "aria-live": "polite" }, "State: ", stateEl, " · Connection: ", connEl),
    meta, usageEl, shareBox || "", notice, list, form);
  main.querySelector("h1").focus();

  const r = new Renderer(list, stateEl, usageEl);
  const showNotice = (text) => { notice.textContent = text || ""; };
  const act = async (what, fn) => {
    showNotice("");
    try {
      await fn();
    } catch (e) {
      showNotice(`${what}: ${e.message}`);
    }
  };
  r.answer = (rid, optionId) => act("Answer", () =>
    api("POST", `/v1/sessions/${encodeURIComponent(id)}/permissions/${encodeURIComponent(rid)}`, { option_id: optionId }));

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = promptText.value.trim();
    if (!text) return;
    act("Prompt", async () => {
      await api("POST", `/v1/sessions/${encodeURIComponent(id)}/prompt`, { text });
      promptText.value = "";
    });
  });
  promptText.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit();
  });
  cancelBtn.addEventListener("click", () => act("Cancel", () =>
    api("POST", `/v1/sessions/${encodeURIComponent(id)}/cancel`, {})));
  if (stopBtn) {
    stopBtn.addEventListener("click", () => act("Stop", async () => {
      stopBtn.disabled = true;
      try {
        await api("DELETE", `/v1/sessions/${encodeURIComponent(id)}`);
      } finally {
        stopBtn.disabled = FINAL.has(r.state);
      }
    }));
  }
  r.onState = (state) => {
    const final = FINAL.has(state);
    promptText.disabled = sendBtn.disabled = final;
    cancelBtn.disabled = final || state !== "prompting";
    if (stopBtn) stopBtn.disabled = final;
  };

  api("GET", `/v1/sessions/${encodeURIComponent(id)}`).then((info) => {
    const row = (k, v) => v ? [h("dt", {}, k), h("dd", {}, v)] : [];
    const u = info.usage;
    meta.append(...row("Agent", info.agent), ...row("Model", info.model || "the agent's default"),
      ...row("Task", info.task),
      ...row("Cost", h("span", { id: "session-cost" }, u && u.calls
        ? `$${u.cost_usd}: ${u.calls} model call${u.calls === 1 ? "" : "s"}, ${u.input_tokens} input, ${u.output_tokens} output, ` +
          `${u.cache_read_tokens} cache-read and ${u.cache_write_tokens} cache-write tokens`
        : "$0: no model calls yet")),
      ...row("Budget", info.budget_usd ? `$${info.budget_usd}` : ""),
      ...row("Project", admin ? h("a", { href: `#/projects/${encodeURIComponent(info.project)}` }, info.project) : info.project),
      ...row("Title", info.title),
      ...row("Permissions", info.permission_policy), ...row("Started", when(info.created_at)));
    if (!r.state) r.setState(info.state);
  }, (e) => showNotice(`Session: ${e.message}`));

  // What the stream saw, on the list: the last event shown, and frames it
  // dropped as duplicates or that skipped a number (both zero normally).
  const counts = () => {
    list.dataset.lastSeq = String(stream.lastSeq);
    list.dataset.duplicates = String(stream.duplicates);
    list.dataset.gaps = String(stream.gaps);
  };
  const stream = new EventStream({
    session: id,
    token: cred.token,
    onFrame: (f) => {
      r.frame(f);
      counts();
    },
    onDuplicate: counts,
    onNotice: showNotice,
    onStatus: (status, detail) => {
      connEl.textContent = detail ? `${status} (${detail})` : status;
      connEl.dataset.conn = status;
      counts();
      if (status === "ended") setStatus("The session has ended; its log is complete.");
    },
    resumable: () => r.resumable,
    probe: async () => {
      try {
        await api("GET", `/v1/sessions/${encodeURIComponent(id)}`);
        return null;
      } catch (e) {
        if (e instanceof ApiError && [401, 403, 404].includes(e.status)) return e.message;
        return null; // the network: try again
      }
    },
  });
  stream.start();
  return () => stream.close();
}

// viewerLink offers the link that lets someone else watch (and steer) this
// session with its viewer token, when this tab started it.
function viewerLink(id) {
  const tok = sessionStorage.getItem(`agentbroker.viewer.${id}`);
  if (!tok) return null;
  const link = `${location.origin}${location.pathname}#session=${encodeURIComponent(id)}&token=${encodeURIComponent(tok)}`;
  return h("details", { class: "share" },
    h("summary", {}, "Viewer link"),
    h("p", {}, "Anyone with this link can watch this session, prompt it and answer its questions until it ends. " +
      "The token is in the part after #, which browsers never send to the server."),
    h("label", { for: "viewer-link" }, "Link"),
    h("input", { id: "viewer-link", type: "text", readonly: true, value: link }));
}

const str = (v) => (typeof v === "string" ? v : "");

// toolResult shows what a tool call or its update carries: its text
// content, or else its raw output.
function toolResult(d) {
  const texts = (d.content || []).map((c) => str(c.content?.text)).filter(Boolean);
  if (texts.length) return h("pre", { class: "result" }, texts.join("\n"));
  if (d.rawOutput !== undefined) return h("pre", { class: "result" }, JSON.stringify(d.rawOutput, null, 2));
  return null;
}

export class Renderer {
  constructor(list, stateEl, usageEl) {
    this.list = list;
    this.stateEl = stateEl;
    this.usageEl = usageEl;
    this.current = null; // {kind: "message"|"thought", body}
    this.tools = new Map(); // toolCallId → card
    this.permissions = new Map(); // request_id → card
    this.mcpName = "agentbroker";
    this.usage = { calls: 0, input: 0, output: 0, micro: 0 };
    this.state = "";
    this.resumable = false;
    this.onState = () => {};
    this.answer = () => {};
  }

  setState(state) {
    this.state = state;
    this.stateEl.textContent = state;
    this.stateEl.dataset.state = state;
    this.onState(state);
  }

  // add appends a top-level item for an event.
  add(f, cls, ...children) {
    this.current = null;
    const li = h("li", { class: cls, "data-seq": f.seq, "data-type": f.type }, ...children);
    this.list.append(li);
    return li;
  }

  frame(f) {
    const d = f.data && typeof f.data === "object" ? f.data : {};
    switch (f.type) {
      case "update":
        return this.update(f, d);
      case "replay":
        return this.add(f, "muted", `Replayed history: ${str(d.sessionUpdate) || "update"}`);
      case "state":
        this.resumable = d.state === "interrupted" && d.resumable === true;
        this.setState(str(d.state));
        return this.add(f, "state", `State: ${str(d.state)}`, d.reason ? ` — ${d.reason}` : "");
      case "prompt":
        return this.add(f, "user", h("span", { class: "who" }, "Prompt"), h("p", {}, str(d.text)),
          d.by ? h("span", { class: "by" }, `by ${d.by}`) : "");
      case "turn_end":
        return this.add(f, "muted", `Turn ${d.turn ?? ""} ended: ${str(d.stop_reason)}`);
      case "cancel":
        return this.add(f, "muted", "Cancel requested", d.by ? ` by ${d.by}` : "");
      case "config":
        if (d.mcp && str(d.mcp.name)) this.mcpName = d.mcp.name;
        return this.add(f, "muted", `Configured: ${str(d.profile)}${d.model ? `, model ${d.model}` : ""}, ` +
          `MCP server "${this.mcpName}"${d.permission_policy ? `, permissions ${d.permission_policy}` : ""}`);
      case "agent_started":
        return this.add(f, "muted", `Agent process started (pid ${d.pid ?? "?"}, attempt ${d.attempt ?? 1})`);
      case "acp_session":
        return this.add(f, "muted", `ACP session ${str(d.acp_session_id)}${d.agent_info ? ` with ${str(d.agent_info.name)} ${str(d.agent_info.version)}` : ""}`);
      case "mcp_connected":
        return this.add(f, "muted", "The agent reached our MCP server");
      case "tool_call_mcp":
        return this.mcpCall(f, d);
      case "permission_request":
        return this.permissionRequest(f, d);
      case "permission_answer":
        return this.permissionAnswer(f, d);
      case "usage":
        return this.usageEvent(f, d);
      case "model_refused":
        return this.add(f, "warn", h("strong", {}, "Model refused"),
          `: the agent asked for ${str(d.wire_model)} (this session's model is ${str(d.model) || "unset"}): ${str(d.message)}`);
      case "turn_failed":
        return this.add(f, "warn failed", h("strong", {}, "turn failed"), d.turn ? ` (turn ${d.turn})` : "",
          d.reason ? `, ${str(d.reason).replace(/_/g, " ")}` : "", ": ", str(d.error) || JSON.stringify(d));
      case "budget_exceeded":
        return this.add(f, "warn", h("strong", {}, "Budget exceeded"), ": ", str(d.message));
      case "agent_exited":
      case "mcp_not_connected":
      case "warning":
        return this.add(f, "warn", h("strong", {}, f.type.replace(/_/g, " ")), ": ", h("code", {}, JSON.stringify(d)));
      default:
        return this.add(f, "muted", f.type);
    }
  }

  update(f, d) {
    const kind = str(d.sessionUpdate);
    switch (kind) {
      case "agent_message_chunk":
        return this.chunk(f, "message", str(d.content?.text));
      case "agent_thought_chunk":
        return this.chunk(f, "thought", str(d.content?.text));
      case "tool_call":
        return this.toolCall(f, d);
      case "tool_call_update":
        return this.toolUpdate(f, d);
      case "plan":
        return this.add(f, "plan", h("span", { class: "who" }, "Plan"),
          h("ol", {}, (d.entries || []).map((e) =>
            h("li", { "data-status": str(e.status) }, h("span", { class: "badge" }, str(e.status)), " ", str(e.content)))));
      case "available_commands_update":
        return this.add(f, "muted", `Commands: ${(d.availableCommands || []).map((c) => "/" + c.name).join(" ")}`);
      case "current_mode_update":
        return this.add(f, "muted", `Mode: ${str(d.currentModeId)}`);
      default:
        return this.add(f, "muted", `Update: ${kind}`);
    }
  }

  // chunk appends streamed text to the open message (or thinking) block,
  // or opens one.
  chunk(f, kind, text) {
    if (!this.current || this.current.kind !== kind) {
      const body = h("div", { class: "text" });
      let li;
      if (kind === "thought") {
        li = h("li", { class: "thought" }, h("details", {}, h("summary", {}, "Thinking"), body));
      } else {
        li = h("li", { class: "agent" }, h("span", { class: "who" }, "Agent"), body);
      }
      this.list.append(li);
      this.current = { kind, body };
    }
    this.current.body.append(h("span", { "data-seq": f.seq, "data-type": f.type }, text));
  }

  ours(title) {
    return str(title).startsWith(`mcp__${this.mcpName}__`);
  }

  toolCall(f, d) {
    const id = str(d.toolCallId);
    const title = str(d.title);
    const ours = this.ours(title);
    const status = h("span", { class: "badge status" }, str(d.status) || "pending");
    const name = ours ? title.slice(`mcp__${this.mcpName}__`.length) : title;
    const card = this.add(f, "tool",
      h("div", { class: "tool-head" },
        h("span", { class: "who" }, "Tool"), h("code", {}, name),
        ours ? h("span", { class: "badge ours", title: `served by this broker (${this.mcpName})` }, "our MCP tool") : "",
        status),
      d.rawInput !== undefined ? h("details", {}, h("summary", {}, "Input"), h("pre", {}, JSON.stringify(d.rawInput, null, 2))) : "",
      toolResult(d) || "");
    card.dataset.toolCallId = id;
    card.dataset.status = str(d.status) || "pending";
    if (ours) card.dataset.ours = "true";
    card.statusEl = status;
    this.tools.set(id, card);
  }

  toolUpdate(f, d) {
    const id = str(d.toolCallId);
    let card = this.tools.get(id);
    const st = str(d.status);
    const parts = [];
    if (st) parts.push(h("span", { class: "badge" }, st));
    const result = toolResult(d);
    if (result) parts.push(result);
    const row = h("div", { class: "tool-update", "data-seq": f.seq, "data-type": f.type }, "Update: ", ...parts);
    if (!card) {
      card = this.add(f, "tool", h("div", { class: "tool-head" }, h("span", { class: "who" }, "Tool"), h("code", {}, id)));
      card.removeAttribute("data-seq");
      card.removeAttribute("data-type");
      card.dataset.toolCallId = id;
      this.tools.set(id, card);
    }
    this.current = null;
    card.append(row);
    if (st) {
      card.dataset.status = st;
      if (card.statusEl) card.statusEl.textContent = st;
    }
  }

  mcpCall(f, d) {
    const tool = str(d.tool);
    const li = this.add(f, "mcp-call", "Our MCP server answered ", h("code", {}, tool), `: ${str(d.outcome)}`,
      d.duration_ms !== undefined ? ` (${d.duration_ms} ms)` : "", d.error ? ` — ${d.error}` : "");
    // Mark the agent's card for this call, the latest one with the tool's name.
    const cards = [...this.list.querySelectorAll("li.tool")].reverse();
    const card = cards.find((c) => c.querySelector(".tool-head code")?.textContent === tool && c.dataset.ours);
    if (card) card.dataset.mcpOutcome = str(d.outcome);
    return li;
  }

  permissionRequest(f, d) {
    const rid = str(d.request_id);
    const tc = d.tool_call || {};
    const title = str(tc.title);
    const buttons = (d.options || []).map((o) =>
      h("button", {
        type: "button", class: str(o.kind).startsWith("reject") ? "secondary" : "",
        "data-option-id": str(o.optionId), "data-kind": str(o.kind),
        onclick: () => this.answer(rid, str(o.optionId)),
      }, `${str(o.name)} (${str(o.kind).replace(/_/g, " ")})`));
    const outcome = h("p", { class: "outcome", "aria-live": "polite" });
    const card = this.add(f, "permission",
      h("p", {}, h("strong", {}, "Permission: "), "the agent asks to run ",
        h("code", {}, this.ours(title) ? title.slice(`mcp__${this.mcpName}__`.length) : title),
        this.ours(title) ? " (our MCP tool)" : ""),
      h("div", { class: "buttons", role: "group", "aria-label": `Answer the permission request ${rid}` }, buttons),
      outcome);
    card.dataset.requestId = rid;
    card.dataset.answered = "false";
    card.outcomeEl = outcome;
    this.permissions.set(rid, card);
  }

  permissionAnswer(f, d) {
    const rid = str(d.request_id);
    const text = `Permission ${str(d.outcome)}${d.kind ? `: ${str(d.kind).replace(/_/g, " ")}` : ""}` +
      `${d.answered_by ? ` by ${d.answered_by}` : ""}${d.reason ? ` (${d.reason})` : ""}`;
    const card = this.permissions.get(rid);
    if (card) {
      card.dataset.answered = "true";
      card.outcomeEl.textContent = text;
      for (const b of card.querySelectorAll("button")) b.disabled = true;
    }
    return this.add(f, "muted", text);
  }

  usageEvent(f, d) {
    const u = d.usage || {};
    this.usage.calls++;
    this.usage.input += u.input_tokens || 0;
    this.usage.output += u.output_tokens || 0;
    this.usage.micro += d.cost_micro_usd || 0;
    const dollars = (m) => `$${(m / 1e6).toFixed(4)}`;
    this.usageEl.textContent = `Usage so far: ${this.usage.calls} model call${this.usage.calls === 1 ? "" : "s"}, ` +
      `${this.usage.input} input and ${this.usage.output} output tokens, ${dollars(this.usage.micro)}`;
    return this.add(f, "muted", `Model call: ${str(d.model) || str(d.wire_model)} ${str(d.outcome)}` +
      (d.usage ? `, ${u.input_tokens || 0} in / ${u.output_tokens || 0} out` : "") +
      (d.cost_micro_usd !== undefined ? `, ${dollars(d.cost_micro_usd)}` : ""));
  }
}
