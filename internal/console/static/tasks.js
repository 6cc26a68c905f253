// A project's tasks: each with its status; its runs, loaded when "Runs" is
// opened (agent, model, state, duration, cost, reason, each linking to its
// session); and "Run with an agent", which starts a run, follows its
// session live and refreshes the task and its runs when the run ends.

import { api, credential, ApiError } from "./api.js";
import { h, clear, when } from "./dom.js";
import { agentPickers, field, offeredAgents } from "./agents.js";
import { EventStream } from "./stream.js";
import { TASK_STATUSES, editTaskForm } from "./edit.js";

// A run starts from these statuses (sessions.RunTask).
const RUNNABLE = new Set(["draft", "queued", "failed"]);

// duration renders milliseconds as a person reads them.
export function duration(ms) {
  const s = Math.max(0, Number(ms) || 0) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// runCost says what a run's (or a task's) model calls cost.
export function runCost(u) {
  const calls = u?.calls || 0;
  return `$${u?.cost_usd || "0.00"} (${calls} call${calls === 1 ? "" : "s"})`;
}

// runsTable renders a task's runs, newest first.
export function runsTable(id, runs, total) {
  if (!runs.length) return h("p", { class: "hint" }, "No runs yet.");
  return h("div", { class: "table-wrap" }, h("table", { id, class: "runs-table" },
    h("caption", {}, `Runs, newest first; all this task's sessions cost ${runCost(total)}`),
    h("thead", {}, h("tr", {}, ["Session", "Agent", "Model", "State", "Duration", "Cost", "Reason", "Started"]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, runs.map((r) => h("tr", { "data-session": r.session, "data-state": r.state },
      h("td", { "data-label": "Session" }, h("a", { href: `#/sessions/${encodeURIComponent(r.session)}` }, r.session)),
      h("td", { "data-label": "Agent", class: "agent" }, r.agent),
      h("td", { "data-label": "Model", class: "model" }, r.model || "the agent's default"),
      h("td", { "data-label": "State" }, h("span", { class: "badge state", "data-state": r.state }, r.state),
        r.session_state ? ` (session ${r.session_state})` : ""),
      h("td", { "data-label": "Duration", class: "duration" }, duration(r.duration_ms)),
      h("td", { "data-label": "Cost", class: "cost" }, runCost(r.usage)),
      h("td", { "data-label": "Reason", class: "reason" }, r.reason || "—",
        r.reply ? h("details", {}, h("summary", {}, "Reply"), h("pre", { class: "doc" }, r.reply)) : "",
        r.notes ? h("details", {}, h("summary", {}, "Notes"), h("pre", { class: "doc" }, r.notes)) : ""),
      h("td", { "data-label": "Started" }, when(r.started_at)))))));
}

// taskList renders a project's tasks as a board, one column per status;
// a card moves to its new column when its status changes (a run that
// ends, an edit). close stops following runs (the view's cleanup);
// changed is called after an edit.
export function taskList(project, tasks, changed) {
  let closed = false;
  const streams = new Set();
  let agents = null; // agents.json, fetched once, when a run form opens
  const offered = () => (agents ??= offeredAgents());
  const columns = new Map(TASK_STATUSES.map((st) => [st, h("ul", { class: "cards column-cards", "aria-label": st.replace(/_/g, " ") })]));
  const counts = new Map(TASK_STATUSES.map((st) => [st, h("span", { class: "count" }, "0")]));
  const el = h("div", { class: "board", id: "tasks" }, TASK_STATUSES.map((st) =>
    h("section", { class: "column", "data-status": st },
      h("h3", {}, st.replace(/_/g, " "), " ", counts.get(st)), columns.get(st))));
  const recount = () => {
    for (const [st, ul] of columns) counts.get(st).textContent = String(ul.children.length);
  };
  const place = (card, status) => {
    const col = columns.get(status) || columns.get("draft");
    if (card.parentElement !== col) col.append(card);
    recount();
  };
  const view = { offered, streams, closed: () => closed, place, changed: changed || (() => {}) };
  for (const t of tasks) place(taskCard(project, t, view), t.status);
  return {
    el,
    close() {
      closed = true;
      for (const s of streams) s.close();
      streams.clear();
    },
  };
}

function taskCard(project, t, view) {
  const path = `/v1/projects/${encodeURIComponent(project.id)}/tasks/${encodeURIComponent(t.id)}/runs`;
  const pfx = `task-${t.id}-`;
  const badge = h("span", { class: "badge", id: `${pfx}status`, "data-status": t.status }, t.status);
  const outcome = h("div", { class: "task-outcome" });
  const live = h("p", { class: "run-live", id: `${pfx}live`, "aria-live": "polite" });
  const runsBody = h("div", { id: `${pfx}runs` });
  const runsDetails = h("details", { class: "runs" }, h("summary", {}, "Runs"), runsBody);

  // The run form: the start form's pickers, and a working directory.
  const runErr = h("p", { class: "notice", role: "alert", id: `${pfx}run-error` });
  const pickers = agentPickers(`${pfx}run-`, (text) => { runErr.textContent = text; });
  const cwd = h("input", { id: `${pfx}run-cwd`, type: "text", spellcheck: "false", required: !project.repo_path });
  const submit = h("button", { type: "submit", id: `${pfx}run-start` }, "Run");
  const form = h("form", { class: "run-form", id: `${pfx}run-form`, "aria-label": `Run the task ${t.title} with an agent` },
    ...pickers.elements,
    field(`${pfx}run-cwd`, "Working directory", cwd, project.repo_path
      ? `On the broker's machine; empty: the project's repository, ${project.repo_path}.`
      : "On the broker's machine (the project has no repository path)."),
    submit, runErr);
  const runDetails = h("details", { class: "run", hidden: !RUNNABLE.has(t.status) },
    h("summary", {}, "Run with an agent"), form);

  let card = null;
  const showTask = (task) => {
    badge.textContent = task.status;
    badge.dataset.status = task.status;
    if (card) {
      view.place(card, task.status);
      // The edit form follows what the run changed.
      const sel = card.querySelector(`#edit-task-${CSS.escape(task.id)}-status`);
      if (sel) sel.value = task.status;
    }
    runDetails.hidden = !RUNNABLE.has(task.status);
    clear(outcome).append(
      task.notes ? h("details", {}, h("summary", {}, "Notes"), h("pre", { class: "doc task-notes" }, task.notes)) : "",
      // A long summary (an agent's raw tool output, say) folds away.
      task.output_summary ? (task.output_summary.length > 160
        ? h("details", {}, h("summary", {}, "Summary"), h("p", { class: "task-summary" }, task.output_summary))
        : h("p", { class: "task-summary" }, task.output_summary)) : "");
  };

  let loads = 0;
  const loadRuns = async () => {
    const mine = ++loads;
    try {
      const r = await api("GET", path);
      if (mine !== loads || view.closed()) return;
      showTask(r.task);
      clear(runsBody).append(runsTable(`${pfx}runs-table`, r.runs || [], r.usage));
      for (const run of r.runs || []) if (run.state === "running") follow(run.session);
    } catch (e) {
      if (mine === loads) clear(runsBody).append(h("p", { class: "notice", role: "alert" }, `Runs: ${e.message}`));
    }
  };

  // follow watches a running run's session: its state, live, and its end,
  // after which the task and its runs are read again.
  const following = new Set();
  const done = new Set();
  const follow = (session) => {
    if (view.closed() || following.has(session) || done.has(session)) return;
    following.add(session);
    const state = h("span", { class: "badge", "data-state": "" }, "starting");
    clear(live).append("Run ", h("a", { href: `#/sessions/${encodeURIComponent(session)}`, class: "run-session",
      title: "Watch this run's session live" }, session), ": session ", state);
    live.dataset.session = session;
    const stream = new EventStream({
      session,
      token: credential()?.token,
      onFrame: (f) => {
        const d = f.data && typeof f.data === "object" ? f.data : {};
        if (f.type === "state" && typeof d.state === "string") {
          state.textContent = d.state;
          state.dataset.state = d.state;
        } else if (f.type === "run_end") {
          live.append(`; the run ended ${typeof d.state === "string" ? d.state : ""}`);
          loadRuns();
        }
      },
      onNotice: () => {},
      onStatus: (status) => {
        if (status !== "ended" && status !== "failed") return;
        stream.close();
        view.streams.delete(stream);
        following.delete(session);
        done.add(session);
        loadRuns();
      },
      resumable: () => false,
      probe: async () => {
        try {
          await api("GET", `/v1/sessions/${encodeURIComponent(session)}`);
          return null;
        } catch (e) {
          return e instanceof ApiError && [401, 403, 404].includes(e.status) ? e.message : null;
        }
      },
    });
    view.streams.add(stream);
    stream.start();
  };

  runsDetails.addEventListener("toggle", () => {
    if (runsDetails.open) loadRuns();
  });
  let pickersLoaded = false;
  runDetails.addEventListener("toggle", async () => {
    if (!runDetails.open || pickersLoaded) return;
    pickersLoaded = true;
    try {
      await pickers.setAgents(await view.offered());
    } catch (e) {
      runErr.textContent = `Agents: ${e.message}`;
    }
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    runErr.textContent = "";
    submit.disabled = true;
    try {
      const r = await api("POST", path, {
        agent: pickers.agent(), model: pickers.model(), credential: pickers.credential(), cwd: cwd.value.trim() || undefined,
      });
      pickers.forget();
      sessionStorage.setItem(`agentbroker.viewer.${r.session.id}`, r.viewer_token);
      runDetails.open = false;
      runDetails.hidden = true;
      follow(r.session.id);
    } catch (e) {
      runErr.textContent = `The run did not start: ${e.message}`;
    } finally {
      submit.disabled = false;
    }
    // A run that did not start is recorded too, as failed.
    if (runsDetails.open) loadRuns();
    else runsDetails.open = true;
  });

  showTask(t);
  card = h("li", { class: "card task", "data-task": t.id },
    h("p", {}, h("strong", { class: "task-title" }, t.title), " ", badge),
    h("p", { class: "hint" }, h("code", {}, t.id), t.session_id ? ` · session ${t.session_id}` : ""),
    t.description ? h("details", {}, h("summary", {}, "Description"), h("pre", { class: "doc task-description" }, t.description)) : "",
    outcome, live, runsDetails, runDetails, editTaskForm(project, t, () => view.changed()));
  return card;
}
