// The live view of one session, as a conversation: the person's prompts
// and the agent's replies (Markdown, rendered by the broker and sanitized
// there: POST /v1/sessions/{id}/render), tool calls as compact cards with
// their diffs, permission questions inside the tool call they are about
// and pinned at the top while they wait, and everything else (thinking,
// the agent's start, state changes, model calls) folded into one quiet
// line between turns. The composer stays at the bottom of the window.
//
// Every event the broker sends becomes exactly one element carrying its
// sequence number (data-seq) inside the event list, so that what was
// rendered can be checked against the log: no gap, no duplicate. Events
// that only change something already shown (a tool call's progress, a
// permission's answer, a streamed chunk) leave an empty marker.
//
// Prompts, cancels, permission answers and stops go over the HTTP API, not
// the WebSocket: each answer (or refusal) then belongs to its action, and
// they work while the socket is reconnecting.

import { api, credential, ApiError } from "./api.js";
import { h, clear, when } from "./dom.js";
import { diffView } from "./diff.js";
import { EventStream } from "./stream.js";
import { adviceFor } from "./advice.js";

const FINAL = new Set(["stopped", "failed", "interrupted"]);

export function sessionView(main, id, setStatus) {
  const cred = credential();
  const admin = cred.kind === "admin";
  const enc = encodeURIComponent(id);
  const stateEl = h("span", { class: "badge", id: "state", "data-state": "" }, "…");
  const connEl = h("span", { class: "badge conn", id: "conn", "data-conn": "connecting" }, "connecting");
  const meta = h("dl", { class: "meta" });
  const usageEl = h("p", { class: "usage", id: "usage" }, "No model calls yet.");
  const list = h("ol", { class: "events conversation", id: "events", "aria-label": "Conversation", "data-last-seq": "0" });
  const notice = h("p", { class: "notice", id: "session-notice", role: "alert" });
  const failure = h("div", { class: "failure", id: "failure", role: "alert", hidden: true });
  const pinned = h("div", { class: "pinned", id: "pinned", "aria-live": "assertive" });
  const promptText = h("textarea", { id: "prompt-text", rows: 2, placeholder: "Ask the agent… (Ctrl+Enter sends)" });
  const sendBtn = h("button", { type: "submit", id: "send" }, "Send");
  const cancelBtn = h("button", { type: "button", id: "cancel", class: "secondary" }, "Cancel turn");
  const stopBtn = admin ? h("button", { type: "button", id: "stop", class: "danger" }, "Stop session") : null;
  const form = h("form", { class: "prompt composer", id: "prompt-form", "aria-label": "Prompt" },
    h("label", { for: "prompt-text", class: "visually-hidden" }, "Prompt"), promptText,
    h("div", { class: "buttons" }, sendBtn, cancelBtn, stopBtn));
  const shareBox = admin ? viewerLink(id) : null;
  const notifyBtn = "Notification" in window && Notification.permission === "default"
    ? h("button", { type: "button", id: "notify", class: "secondary small" }, "Notify me when the agent asks") : null;
  const titleEl = h("h1", { tabindex: -1 }, "Session ", h("code", {}, id));

  clear(main).append(h("section", { class: "session" },
    h("header", { class: "session-head" }, titleEl,
      h("p", { class: "status-line", "aria-live": "polite" }, "State: ", stateEl, " · Connection: ", connEl,
        notifyBtn ? " " : "", notifyBtn || ""),
      h("details", { class: "session-details" }, h("summary", {}, "Details"), meta, usageEl, shareBox || "")),
    failure, pinned, notice, list, form));
  titleEl.focus();

  const pageTitle = document.title;
  const r = new Renderer(list, stateEl, usageEl);
  r.render = (texts) => api("POST", `/v1/sessions/${enc}/render`, { markdown: texts }).then((res) => res.html);
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
    api("POST", `/v1/sessions/${enc}/permissions/${encodeURIComponent(rid)}`, { option_id: optionId }));
  // A pending question: pinned at the top with its buttons, the tab's
  // title says so, and a desktop notification when the person allowed them.
  r.onPending = (pending, fresh) => {
    clear(pinned).append(...pending.map((p) => h("div", { class: "pinned-permission", "data-request-id": p.rid },
      h("p", {}, h("strong", {}, "The agent is waiting for your answer: "), "it asks to run ", h("code", {}, p.what), "."),
      h("div", { class: "buttons", role: "group", "aria-label": `Answer from the top: ${p.what}` },
        p.options.map((o) => h("button", { type: "button", class: o.reject ? "secondary" : "", "data-kind": o.kind,
          onclick: () => r.answer(p.rid, o.id) }, o.label)),
        h("button", { type: "button", class: "link", onclick: () => p.card.scrollIntoView({ block: "center" }) }, "Show in the conversation")))));
    document.title = pending.length ? `(${pending.length}) Waiting for you · ${pageTitle}` : pageTitle;
    // A question replayed from the log (a reload) is usually answered a
    // few events later: only one still waiting shortly after it came, and
    // asked recently, scrolls into view and notifies.
    if (fresh && !(fresh.time && Date.now() - Date.parse(fresh.time) > 60000)) {
      setTimeout(() => {
        if (fresh.card.dataset.answered !== "false" || !fresh.card.isConnected) return;
        fresh.card.scrollIntoView({ block: "nearest" });
        if ("Notification" in window && Notification.permission === "granted") {
          try {
            new Notification("The agent is waiting for your answer", { body: `It asks to run ${fresh.what}.`, tag: fresh.rid });
          } catch {
            // A browser that allows notifications only from a service worker.
          }
        }
      }, 300);
    }
  };
  if (notifyBtn) {
    notifyBtn.addEventListener("click", async () => {
      const answer = await Notification.requestPermission();
      notifyBtn.hidden = answer !== "default";
    });
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = promptText.value.trim();
    if (!text) return;
    act("Prompt", async () => {
      await api("POST", `/v1/sessions/${enc}/prompt`, { text });
      promptText.value = "";
    });
  });
  promptText.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit();
  });
  cancelBtn.addEventListener("click", () => act("Cancel", () => api("POST", `/v1/sessions/${enc}/cancel`, {})));
  if (stopBtn) {
    stopBtn.addEventListener("click", () => act("Stop", async () => {
      stopBtn.disabled = true;
      try {
        await api("DELETE", `/v1/sessions/${enc}`);
      } finally {
        stopBtn.disabled = FINAL.has(r.state);
      }
    }));
  }
  // A failed session says why and what to do, and offers no prompt.
  const showFailure = async () => {
    let info = null;
    try {
      info = await api("GET", `/v1/sessions/${enc}`);
    } catch {
      // The reason from the state event is still shown.
    }
    const why = info?.last_error || r.failReason || "the broker recorded no reason";
    clear(failure).append(h("p", {}, h("strong", {}, "This session failed"), r.failReason ? ` (${r.failReason})` : "", ": ",
      h("span", { class: "why" }, why)), h("p", { class: "advice" }, adviceFor(why, info?.agent)));
    failure.hidden = false;
  };
  r.onState = (state) => {
    const final = FINAL.has(state);
    promptText.disabled = sendBtn.disabled = final;
    cancelBtn.disabled = final || state !== "prompting";
    if (stopBtn) stopBtn.disabled = final;
    form.hidden = final;
    if (state === "failed" && failure.hidden) showFailure();
  };

  api("GET", `/v1/sessions/${enc}`).then((info) => {
    const row = (k, v) => v ? [h("dt", {}, k), h("dd", {}, v)] : [];
    const u = info.usage;
    if (info.title) titleEl.replaceChildren(info.title, " ", h("code", { class: "session-id" }, id));
    meta.append(...row("Agent", info.agent), ...row("Model", info.model || "the agent's default"),
      ...row("Task", info.task),
      ...row("Cost", h("span", { id: "session-cost" }, u && u.calls
        ? `$${u.cost_usd}: ${u.calls} model call${u.calls === 1 ? "" : "s"}, ${u.input_tokens} input, ${u.output_tokens} output, ` +
          `${u.cache_read_tokens} cache-read and ${u.cache_write_tokens} cache-write tokens`
        : "$0: no model calls yet")),
      ...row("Budget", info.budget_usd ? `$${info.budget_usd}` : ""),
      ...row("Project", admin ? h("a", { href: `#/projects/${encodeURIComponent(info.project)}` }, info.project) : info.project),
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
        await api("GET", `/v1/sessions/${enc}`);
        return null;
      } catch (e) {
        if (e instanceof ApiError && [401, 403, 404].includes(e.status)) return e.message;
        return null; // the network: try again
      }
    },
  });
  stream.start();
  return () => {
    stream.close();
    r.close();
    document.title = pageTitle;
  };
}

// viewerLink offers the link that lets someone else watch (and steer) this
// session with its viewer token, when this tab started it.
function viewerLink(id) {
  const tok = sessionStorage.getItem(`agentbroker.viewer.${id}`);
  if (!tok) return null;
  const link = `${location.origin}${location.pathname}#session=${encodeURIComponent(id)}&token=${encodeURIComponent(tok)}`;
  return h("div", { class: "share" },
    h("p", {}, "Anyone with this viewer link can watch this session, prompt it and answer its questions until it ends. " +
      "The token is in the part after #, which browsers never send to the server."),
    h("label", { for: "viewer-link" }, "Viewer link"),
    h("input", { id: "viewer-link", type: "text", readonly: true, value: link }));
}

const str = (v) => (typeof v === "string" ? v : "");

// The tags and attributes the broker's sanitizer lets through
// (internal/markdown); anything else is removed here again, in case.
const TAGS = new Set(["P", "BR", "HR", "H1", "H2", "H3", "H4", "H5", "H6", "STRONG", "EM", "DEL", "CODE", "PRE",
  "BLOCKQUOTE", "UL", "OL", "LI", "TABLE", "THEAD", "TBODY", "TR", "TH", "TD", "A"]);

// markup turns sanitized HTML into nodes, checking it once more.
export function markup(html) {
  const t = document.createElement("template");
  t.innerHTML = html;
  for (const el of [...t.content.querySelectorAll("*")]) {
    if (!TAGS.has(el.tagName)) {
      el.replaceWith(document.createTextNode(el.textContent));
      continue;
    }
    for (const a of [...el.attributes]) {
      const ok = (a.name === "href" && el.tagName === "A" && /^(https?|mailto):/i.test(a.value)) ||
        (a.name === "class" && el.tagName === "CODE") || a.name === "rel" || a.name === "start" ||
        (a.name === "target" && a.value === "_blank");
      if (!ok) el.removeAttribute(a.name);
    }
  }
  return t.content;
}

// marker is the empty element an event leaves when it only changed
// something already shown.
const marker = (f) => h("span", { class: "marker", "data-seq": f.seq, "data-type": f.type });

const KIND_TITLES = { edit: "Edit", read: "Read", delete: "Delete", move: "Move", search: "Search", execute: "Run",
  think: "Think", fetch: "Fetch", other: "Tool" };

export class Renderer {
  constructor(list, stateEl, usageEl) {
    this.list = list;
    this.stateEl = stateEl;
    this.usageEl = usageEl;
    this.message = null; // the agent's reply being streamed: {li, body, raw, seqs, version}
    this.quietGroup = null; // the open quiet line: {li, summary, items, labels}
    this.thought = null; // the thought being streamed, inside the quiet line
    this.plan = null; // this turn's plan card
    this.tools = new Map(); // toolCallId → card
    this.permissions = new Map(); // request_id → {card, pending}
    this.mcpName = "agentbroker";
    this.usage = { calls: 0, input: 0, output: 0, micro: 0 };
    this.state = "";
    this.failReason = "";
    this.resumable = false;
    this.onState = () => {};
    this.onPending = () => {};
    this.answer = () => {};
    this.render = null; // texts → Promise<html[]>; null: replies stay plain text
    this.dirty = new Set();
    this.timer = null;
  }

  close() {
    clearTimeout(this.timer);
    this.dirty.clear();
  }

  setState(state) {
    this.state = state;
    this.stateEl.textContent = state;
    this.stateEl.dataset.state = state;
    this.onState(state);
  }

  // add appends a top-level item of the conversation; it ends the quiet
  // line and the streamed reply.
  add(f, cls, ...children) {
    this.message = null;
    this.quietGroup = null;
    this.thought = null;
    const li = h("li", { class: cls, "data-seq": f.seq, "data-type": f.type }, ...children);
    this.list.append(li);
    return li;
  }

  // quiet puts an item in the quiet line, opening one if needed. label
  // is what the line's summary says of it.
  quiet(f, label, cls, ...children) {
    const li = h("li", { class: cls || "", "data-seq": f.seq, "data-type": f.type }, ...children);
    this.quietItem(li, label);
    return li;
  }

  quietItem(li, label) {
    if (!this.quietGroup) {
      const summary = h("summary", {});
      const items = h("ol", { class: "quiet-items" });
      const group = h("li", { class: "quiet" }, h("details", {}, summary, items));
      this.list.append(group);
      this.quietGroup = { li: group, summary, items, labels: new Map() };
    }
    const g = this.quietGroup;
    g.items.append(li);
    if (label) g.labels.set(label, (g.labels.get(label) || 0) + 1);
    g.summary.textContent = [...g.labels].map(([l, n]) => (n > 1 ? `${l} ×${n}` : l)).join(" · ");
  }

  frame(f) {
    const d = f.data && typeof f.data === "object" ? f.data : {};
    switch (f.type) {
      case "update":
        return this.update(f, d);
      case "replay":
        return this.quiet(f, "history replayed", "", `Replayed history: ${str(d.sessionUpdate) || "update"}`);
      case "state":
        return this.stateEvent(f, d);
      case "prompt":
        this.plan = null;
        return this.add(f, "user", h("span", { class: "who" }, "You"), h("div", { class: "text" }, str(d.text)));
      case "turn_end": {
        const reason = str(d.stop_reason);
        const text = `Turn ${d.turn ?? ""} ended: ${reason}`;
        this.message = null;
        this.thought = null;
        if (reason && reason !== "end_turn") return this.add(f, "turn-end", text);
        return this.quiet(f, "", "turn-end", text);
      }
      case "cancel":
        return this.quiet(f, "cancel requested", "", "Cancel requested");
      case "config":
        if (d.mcp && str(d.mcp.name)) this.mcpName = d.mcp.name;
        return this.quiet(f, "configured", "", `Configured: ${str(d.profile)}${d.model ? `, model ${d.model}` : ""}, ` +
          `MCP server "${this.mcpName}"${d.permission_policy ? `, permissions ${d.permission_policy}` : ""}`);
      case "agent_started":
        return this.quiet(f, "agent started", "", `Agent process started (attempt ${d.attempt ?? 1})`);
      case "acp_session":
        return this.quiet(f, "", "", `Agent session opened${d.agent_info ? ` with ${str(d.agent_info.name)} ${str(d.agent_info.version)}` : ""}`);
      case "mcp_connected":
        return this.quiet(f, "our tools connected", "", "The agent reached our MCP server");
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
        return this.quiet(f, f.type.replace(/_/g, " "), "", f.type);
    }
  }

  stateEvent(f, d) {
    const state = str(d.state);
    this.resumable = state === "interrupted" && d.resumable === true;
    if (state === "failed") this.failReason = str(d.reason);
    this.setState(state);
    const text = [`State: ${state}`, d.reason ? ` — ${d.reason}` : ""];
    if (FINAL.has(state)) return this.add(f, `state final${state === "failed" ? " warn" : ""}`, ...text);
    return this.quiet(f, state, "state", ...text);
  }

  update(f, d) {
    const kind = str(d.sessionUpdate);
    switch (kind) {
      case "agent_message_chunk":
        return this.chunk(f, str(d.content?.text));
      case "agent_thought_chunk":
        return this.thoughtChunk(f, str(d.content?.text));
      case "tool_call":
        return this.toolCall(f, d);
      case "tool_call_update":
        return this.toolUpdate(f, d);
      case "plan":
        return this.planUpdate(f, d);
      case "available_commands_update":
        return this.quiet(f, "commands", "", `Commands: ${(d.availableCommands || []).map((c) => "/" + c.name).join(" ")}`);
      case "current_mode_update":
        return this.quiet(f, "mode", "", `Mode: ${str(d.currentModeId)}`);
      default:
        return this.quiet(f, kind.replace(/_/g, " "), "", `Update: ${kind}`);
    }
  }

  // chunk appends streamed text to the reply being written, or starts one.
  // The text shows as it comes; the Markdown is rendered shortly after.
  chunk(f, text) {
    if (!this.message) {
      const body = h("div", { class: "text md" });
      const seqs = h("span", { class: "markers" });
      const li = h("li", { class: "agent" }, h("span", { class: "who" }, "Agent"), body, seqs);
      this.list.append(li);
      this.quietGroup = null;
      this.message = { li, body, seqs, raw: "", version: 0 };
    }
    const m = this.message;
    m.raw += text;
    m.version++;
    m.seqs.append(marker(f));
    if (m.li.dataset.rendered !== "true") m.body.textContent = m.raw;
    if (this.render) this.schedule(m);
  }

  schedule(m) {
    this.dirty.add(m);
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), 150);
  }

  async flush() {
    this.timer = null;
    const batch = [...this.dirty].slice(0, 64);
    for (const m of batch) this.dirty.delete(m);
    if (this.dirty.size) this.timer = setTimeout(() => this.flush(), 150);
    const versions = batch.map((m) => m.version);
    let html;
    try {
      html = await this.render(batch.map((m) => m.raw));
    } catch {
      return; // the plain text stays
    }
    batch.forEach((m, i) => {
      if (m.version !== versions[i] || typeof html?.[i] !== "string") return; // a newer render is coming
      m.body.replaceChildren(markup(html[i]));
      m.li.dataset.rendered = "true";
    });
  }

  thoughtChunk(f, text) {
    if (!this.thought || !this.quietGroup) {
      const body = h("span", { class: "text" });
      const li = h("li", { class: "thought" }, h("span", { class: "who" }, "Thinking: "), body);
      this.quietItem(li, "thinking");
      this.thought = body;
    }
    this.thought.append(h("span", { "data-seq": f.seq, "data-type": f.type }, text));
  }

  planUpdate(f, d) {
    const entries = h("ol", {}, (d.entries || []).map((e) =>
      h("li", { "data-status": str(e.status) }, h("span", { class: "badge" }, str(e.status).replace(/_/g, " ")), " ", str(e.content))));
    if (this.plan && this.plan.isConnected) {
      this.plan.querySelector("ol").replaceWith(entries);
      this.plan.append(marker(f));
      return this.plan;
    }
    this.plan = this.add(f, "plan", h("span", { class: "who" }, "Plan"), entries);
    return this.plan;
  }

  ours(title) {
    return str(title).startsWith(`mcp__${this.mcpName}__`);
  }

  toolName(title) {
    return this.ours(title) ? str(title).slice(`mcp__${this.mcpName}__`.length) : str(title);
  }

  // toolCard makes the compact card of a call: kind, name, status; its
  // diffs shown, its input and output folded.
  toolCard(f, id, d) {
    const title = str(d.title);
    const ours = this.ours(title);
    const status = h("span", { class: "badge status" }, str(d.status) || "pending");
    const body = h("div", { class: "tool-body" });
    const card = this.add(f, "tool",
      h("div", { class: "tool-head" },
        h("span", { class: "tool-kind" }, KIND_TITLES[str(d.kind)] || "Tool"), h("code", { class: "tool-name" }, this.toolName(title) || id),
        ours ? h("span", { class: "badge ours", title: `served by this broker (${this.mcpName})` }, "our MCP tool") : "",
        status),
      body);
    card.dataset.toolCallId = id;
    card.dataset.status = str(d.status) || "pending";
    if (d.kind) card.dataset.kind = str(d.kind);
    if (ours) card.dataset.ours = "true";
    card.statusEl = status;
    card.bodyEl = body;
    card.parts = { diffs: null, input: null, result: null };
    this.tools.set(id, card);
    return card;
  }

  // fill shows what a call or its update carries: diffs, input, result.
  fill(card, d) {
    const content = Array.isArray(d.content) ? d.content : [];
    const diffs = content.filter((c) => c && c.type === "diff" && typeof c.path === "string");
    if (diffs.length) {
      const el = h("div", { class: "diffs" }, diffs.map((c) => diffView(c.path, str(c.oldText), str(c.newText), c.oldText == null)));
      if (card.parts.diffs) card.parts.diffs.replaceWith(el);
      else card.bodyEl.prepend(el);
      card.parts.diffs = el;
    }
    if (d.rawInput !== undefined && !card.parts.input) {
      card.parts.input = h("details", { class: "tool-input" }, h("summary", {}, "Input"), h("pre", {}, JSON.stringify(d.rawInput, null, 2)));
      card.bodyEl.append(card.parts.input);
    }
    const texts = content.map((c) => str(c?.content?.text)).filter(Boolean);
    let result = null;
    if (texts.length) result = texts.join("\n");
    else if (d.rawOutput !== undefined) result = JSON.stringify(d.rawOutput, null, 2);
    if (result !== null) {
      const el = h("details", { class: "tool-output" }, h("summary", {}, "Output"), h("pre", { class: "result" }, result));
      if (card.parts.result) card.parts.result.replaceWith(el);
      else card.bodyEl.append(el);
      card.parts.result = el;
    }
  }

  toolCall(f, d) {
    const id = str(d.toolCallId);
    // A card opened by a permission question that came first: this call
    // fills it.
    if (this.tools.has(id)) return this.toolUpdate(f, d);
    const card = this.toolCard(f, id, d);
    this.fill(card, d);
    return card;
  }

  toolUpdate(f, d) {
    const id = str(d.toolCallId);
    let card = this.tools.get(id);
    if (!card) {
      // Updates of a call whose start was never seen share one card.
      card = this.toolCard(f, id, d);
      card.removeAttribute("data-seq");
      card.removeAttribute("data-type");
      card.append(marker(f));
    } else {
      card.append(marker(f));
      if (d.title) card.querySelector(".tool-name").textContent = this.toolName(d.title);
    }
    this.fill(card, d);
    const st = str(d.status);
    if (st) {
      card.dataset.status = st;
      card.statusEl.textContent = st.replace(/_/g, " ");
    }
    return card;
  }

  mcpCall(f, d) {
    const tool = str(d.tool);
    const li = this.quiet(f, "our tools answered", "mcp-call", "Our MCP server answered ", h("code", {}, tool), `: ${str(d.outcome)}`,
      d.duration_ms !== undefined ? ` (${d.duration_ms} ms)` : "", d.error ? ` — ${d.error}` : "");
    // Mark the agent's card for this call, the latest one with the tool's name.
    const cards = [...this.list.querySelectorAll("li.tool")].reverse();
    const card = cards.find((c) => c.querySelector(".tool-name")?.textContent === tool && c.dataset.ours);
    if (card) card.dataset.mcpOutcome = str(d.outcome);
    return li;
  }

  pending() {
    return [...this.permissions.values()].filter((p) => p.card.dataset.answered === "false");
  }

  // permissionRequest shows the question inside the card of the tool call
  // it is about (so that it sits where the call is, whatever came after),
  // or on its own when there is none.
  permissionRequest(f, d) {
    const rid = str(d.request_id);
    const tc = d.tool_call || {};
    const what = this.toolName(tc.title) || "a tool";
    const options = (d.options || []).map((o) => ({ id: str(o.optionId), kind: str(o.kind),
      label: str(o.name) + (o.kind ? ` (${str(o.kind).replace(/_/g, " ")})` : ""), reject: str(o.kind).startsWith("reject") }));
    const buttons = options.map((o) => h("button", {
      type: "button", class: o.reject ? "secondary" : "", "data-option-id": o.id, "data-kind": o.kind,
      onclick: () => this.answer(rid, o.id),
    }, o.label));
    const outcome = h("p", { class: "outcome", "aria-live": "polite" });
    const question = [
      h("p", { class: "question" }, h("strong", {}, "Permission: "), "the agent asks to run ", h("code", {}, what),
        this.ours(tc.title) ? " (our MCP tool)" : ""),
      h("div", { class: "buttons", role: "group", "aria-label": `Answer the permission request ${rid}` }, buttons),
      outcome];
    const tcid = str(tc.toolCallId);
    let tool = this.tools.get(tcid);
    if (!tool && tcid) {
      // The question came before the call it is about (the broker records
      // them from different streams): the card opens here.
      tool = this.toolCard(f, tcid, { title: tc.title, kind: tc.kind, status: tc.status });
      tool.removeAttribute("data-seq");
      tool.removeAttribute("data-type");
      this.fill(tool, { rawInput: tc.rawInput });
    }
    let card;
    if (tool) {
      card = h("div", { class: "permission", "data-seq": f.seq, "data-type": f.type }, ...question);
      tool.append(card);
      // A diff the question carries, when the call showed none.
      if (!tool.parts.diffs) this.fill(tool, { content: tc.content });
      this.message = null;
    } else {
      card = this.add(f, "permission", ...question);
      if (tc.content) {
        const diffs = tc.content.filter((c) => c && c.type === "diff" && typeof c.path === "string");
        if (diffs.length) card.insertBefore(h("div", { class: "diffs" },
          diffs.map((c) => diffView(c.path, str(c.oldText), str(c.newText), c.oldText == null))), card.children[1]);
      }
    }
    card.dataset.requestId = rid;
    card.dataset.answered = "false";
    card.outcomeEl = outcome;
    const p = { rid, what, options, card, time: str(f.time) };
    this.permissions.set(rid, p);
    this.onPending(this.pending(), p);
    return card;
  }

  // permissionAnswer marks the question answered, once, where it is.
  permissionAnswer(f, d) {
    const rid = str(d.request_id);
    const text = `Permission ${str(d.outcome)}${d.kind ? `: ${str(d.kind).replace(/_/g, " ")}` : ""}` +
      `${d.reason && d.reason !== "asked" ? ` (${d.reason})` : ""}`;
    const p = this.permissions.get(rid);
    if (!p) return this.quiet(f, "permission answered", "", text);
    const card = p.card;
    card.dataset.answered = "true";
    card.dataset.outcome = str(d.kind) || str(d.outcome);
    card.outcomeEl.textContent = text;
    card.append(marker(f));
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    this.onPending(this.pending(), null);
    return card;
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
    return this.quiet(f, "model call", "", `Model call: ${str(d.model) || str(d.wire_model)} ${str(d.outcome)}` +
      (d.usage ? `, ${u.input_tokens || 0} in / ${u.output_tokens || 0} out` : "") +
      (d.cost_micro_usd !== undefined ? `, ${dollars(d.cost_micro_usd)}` : ""));
  }
}
