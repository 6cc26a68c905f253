// The sessions list, live: the broker pushes the whole list over a
// WebSocket (GET /v1/sessions/watch) at once and after every change, so
// the table follows new sessions, state changes, costs and activity
// without a reload. Filters by project and state; a failed session says
// why and what to do.

import { api, credential } from "./api.js";
import { h, clear, when } from "./dom.js";
import { adviceFor } from "./advice.js";
import { duration } from "./tasks.js";

const SUBPROTOCOL = "agentbroker.sessions.v1";
const CLOSE_TOKEN_INVALID = 4401;
const FINAL = new Set(["stopped", "failed", "interrupted"]);
const STATES = ["starting", "ready", "prompting", "idle", "stopping", "stopped", "failed", "interrupted"];

// costText says what a session's model calls cost, and its budget if any.
export function costText(s) {
  const u = s.usage;
  let text = u && u.calls ? `$${u.cost_usd} (${u.calls} call${u.calls === 1 ? "" : "s"})` : "—";
  if (s.budget_usd) text += ` of $${s.budget_usd}`;
  return text;
}

// ago renders how long ago an ISO time was.
export function ago(iso, now) {
  const t = Date.parse(iso);
  if (isNaN(t)) return "—";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return when(iso);
}

// sessionsList fills view; it returns the function that stops following.
// onRefused is called when the broker refuses the token.
export function sessionsList(view, onRefused) {
  const projectSel = h("select", { id: "filter-project" }, h("option", { value: "" }, "All projects"));
  const stateSel = h("select", { id: "filter-state" }, h("option", { value: "" }, "All states"),
    STATES.map((s) => h("option", { value: s }, s)));
  const live = h("span", { class: "badge conn", id: "sessions-live", "data-conn": "connecting" }, "connecting");
  const body = h("div", { id: "sessions-body" });
  view.append(h("div", { class: "filters" },
    h("span", {}, h("label", { for: "filter-project" }, "Project "), projectSel),
    h("span", {}, h("label", { for: "filter-state" }, "State "), stateSel),
    h("span", {}, "Updates: ", live)), body);

  const names = new Map(); // project ID → name
  const errors = new Map(); // failed session ID → {why, agent} or "loading"
  let list = null;
  let closed = false;
  let ws = null;
  let timer = null;
  let attempt = 0;

  const loadProjects = async () => {
    try {
      const { projects } = await api("GET", "/v1/projects");
      for (const p of projects) names.set(p.id, p.name || p.id);
      const chosen = projectSel.value;
      clear(projectSel).append(h("option", { value: "" }, "All projects"),
        ...projects.map((p) => h("option", { value: p.id, selected: p.id === chosen || undefined }, p.name || p.id)));
    } catch {
      // Project IDs show instead of names.
    }
  };

  const whyFailed = (s) => {
    const e = errors.get(s.id);
    if (e === undefined) {
      errors.set(s.id, "loading");
      api("GET", `/v1/sessions/${encodeURIComponent(s.id)}`).then((info) => {
        errors.set(s.id, { why: info.last_error || "the broker recorded no reason", agent: info.agent });
        draw();
      }, () => errors.delete(s.id));
      return "";
    }
    if (e === "loading") return "";
    return h("div", { class: "why-failed" }, h("p", { class: "why" }, "Why: ", e.why), h("p", { class: "advice" }, adviceFor(e.why, e.agent)));
  };

  const draw = () => {
    if (closed || !list) return;
    const now = Date.now();
    const shown = list.filter((s) => (!projectSel.value || s.project === projectSel.value) && (!stateSel.value || s.state === stateSel.value));
    if (list.some((s) => !names.has(s.project)) && !draw.loading) {
      draw.loading = loadProjects().then(() => { draw.loading = null; draw(); });
    }
    if (!list.length) {
      clear(body).append(h("p", { id: "no-sessions" }, "No sessions yet."));
      return;
    }
    const rows = shown.map((s) => {
      const final = FINAL.has(s.state);
      const started = Date.parse(s.created_at);
      const end = final ? Date.parse(s.last_activity_at || s.updated_at) : now;
      return h("tr", { "data-session": s.id, "data-state": s.state },
        h("td", { "data-label": "Session" }, h("a", { href: `#/sessions/${encodeURIComponent(s.id)}` }, s.title || s.id)),
        h("td", { "data-label": "Project", class: "project" }, names.get(s.project) || s.project),
        h("td", { "data-label": "Agent" }, s.agent), h("td", { "data-label": "Model" }, s.model || "—"),
        h("td", { "data-label": "State" }, h("span", { class: "badge", "data-state": s.state }, s.state),
          s.state === "failed" ? whyFailed(s) : ""),
        h("td", { "data-label": "Started" }, when(s.created_at)),
        h("td", { "data-label": "Duration", class: "duration" }, isNaN(started) || isNaN(end) ? "—" : duration(end - started)),
        h("td", { "data-label": "Cost", class: "cost" }, costText(s)),
        h("td", { "data-label": "Last activity", class: "activity", title: when(s.last_activity_at) }, ago(s.last_activity_at, now)));
    });
    clear(body).append(h("div", { class: "table-wrap" }, h("table", { id: "sessions", "data-count": shown.length },
      h("caption", {}, `${shown.length} of ${list.length} sessions, newest first`),
      h("thead", {}, h("tr", {}, ["Session", "Project", "Agent", "Model", "State", "Started", "Duration", "Cost", "Last activity"]
        .map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows))));
  };
  projectSel.addEventListener("change", draw);
  stateSel.addEventListener("change", draw);

  const status = (s, detail) => {
    live.dataset.conn = s;
    live.textContent = detail ? `${s} (${detail})` : s;
  };
  const connect = () => {
    if (closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    status(attempt ? "reconnecting" : "connecting");
    // The token goes as a second subprotocol, as on the events socket.
    ws = new WebSocket(`${scheme}//${location.host}/v1/sessions/watch`, [SUBPROTOCOL, `bearer.${credential()?.token}`]);
    const mine = ws;
    let opened = false;
    ws.onopen = () => { opened = true; attempt = 0; status("live"); };
    ws.onmessage = (ev) => {
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (f.type !== "sessions" || !Array.isArray(f.sessions)) return;
      list = f.sessions;
      view.dataset.frames = String(Number(view.dataset.frames || 0) + 1);
      draw();
    };
    ws.onclose = async (ev) => {
      if (ws !== mine || closed) return;
      ws = null;
      let refused = ev.code === CLOSE_TOKEN_INVALID;
      if (!opened && !refused) {
        // A refused handshake looks like any other failure from here:
        // ask the API whether the token still passes.
        try {
          await api("GET", "/v1/projects");
        } catch (e) {
          refused = e.status === 401 || e.status === 403;
        }
      }
      if (closed) return;
      if (refused) {
        status("failed", ev.reason || "the token was refused");
        onRefused();
        return;
      }
      attempt++;
      const delay = Math.min(5000, 250 * 2 ** Math.min(attempt - 1, 5));
      status("reconnecting", `retrying in ${(delay / 1000).toFixed(1)} s`);
      timer = setTimeout(connect, delay);
    };
  };
  // Durations of live sessions and "… ago" move on between pushes.
  const tick = setInterval(draw, 10000);
  loadProjects().then(connect);
  return () => {
    closed = true;
    clearTimeout(timer);
    clearInterval(tick);
    if (ws) ws.close(1000, "viewer left");
  };
}
