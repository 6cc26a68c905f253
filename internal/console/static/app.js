// The console: sign-in, projects, sessions, the start form and the live
// session view, routed by the URL fragment (#/projects, #/sessions/ID…).

import { api, credential, setCredential, forget } from "./api.js";
import { agentPickers, field, offeredAgents } from "./agents.js";
import { h, clear, when } from "./dom.js";
import { sessionView } from "./session.js";
import { taskList } from "./tasks.js";
import { sessionsList } from "./sessionlist.js";
import { newProjectForm, editProjectForm, newTaskForm, newKnowledgeForm, editKnowledgeForm } from "./edit.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const status = document.getElementById("status");
let leave = null; // the current view's cleanup

// go shows the view at hash (route runs once: on hashchange, or here when
// the hash is already there).
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function setStatus(text) {
  status.textContent = text || "";
}

// A viewer link is #session=ID&token=T: take the token, then drop it from
// the address bar and the history.
function takeViewerLink() {
  const frag = new URLSearchParams(location.hash.slice(1));
  const token = frag.get("token");
  if (!token) return;
  const session = frag.get("session") || "";
  // An admin signed in here keeps the admin token: it sees the session too.
  if (credential()?.kind !== "admin") setCredential({ kind: "viewer", token, session });
  history.replaceState(null, "", `${location.pathname}#/sessions/${encodeURIComponent(session)}`);
}

function route() {
  if (leave) {
    leave();
    leave = null;
  }
  setStatus("");
  const cred = credential();
  nav.hidden = !cred;
  for (const a of nav.querySelectorAll("[data-admin]")) a.parentElement.hidden = cred?.kind !== "admin";
  const [, first, second] = location.hash.replace(/^#\/?/, "/").split("?")[0].split("/");
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  if (!cred) return signIn();
  if (cred.kind === "viewer") {
    // A viewer token opens one session, nothing else.
    leave = sessionView(main, cred.session, setStatus);
    return;
  }
  switch (first) {
    case "projects":
      return second ? project(decodeURIComponent(second)) : projects();
    case "sessions":
      if (second) {
        leave = sessionView(main, decodeURIComponent(second), setStatus);
        return;
      }
      return sessions();
    case "new":
      return newSession(query.get("project") || "");
    case "usage":
      return usage();
    default:
      return sessions();
  }
}

// page replaces the view and returns it. Views that load append to the
// element they got: once another view has replaced it, a late answer
// lands in a detached element and shows nowhere.
function page(title, ...children) {
  const view = h("section", {}, h("h1", { tabindex: -1 }, title), ...children);
  clear(main).append(view);
  view.querySelector("h1").focus();
  return view;
}

function failure(view, what, e) {
  if (e.status === 401 && view.isConnected) {
    forget();
    setStatus("The token was refused (expired or revoked); sign in again.");
    return route();
  }
  view.append(h("p", { class: "notice", role: "alert" }, `${what}: ${e.message}`));
}

function signIn() {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true,
    "aria-describedby": "token-hint" });
  const err = h("p", { class: "notice", role: "alert", id: "signin-error" });
  const form = h("form", { id: "signin", class: "card" },
    h("label", { for: "token" }, "Admin token"), input,
    h("p", { class: "hint", id: "token-hint" }, "The broker wrote it to the file admin-token in its data directory. " +
      "The console keeps it in this tab only, until you sign out or close the tab."),
    h("button", { type: "submit" }, "Sign in"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const token = input.value.trim();
    try {
      await api("GET", "/v1/projects", undefined, token);
    } catch (e) {
      err.textContent = e.status === 401 || e.status === 403
        ? "That is not an admin token of this broker (or it has expired)." : `Sign-in failed: ${e.message}`;
      return;
    }
    setCredential({ kind: "admin", token });
    input.value = "";
    go("#/sessions");
  });
  page("Sign in", form);
  input.focus();
}

async function projects() {
  const view = page("Projects", newProjectForm((p) => go(`#/projects/${encodeURIComponent(p.id)}`)));
  try {
    const { projects } = await api("GET", "/v1/projects");
    if (!projects.length) {
      view.append(h("p", {}, "No projects yet: create one above (or with ", h("code", {}, "agentbroker project create"), ")."));
      return;
    }
    view.append(h("ul", { class: "cards", id: "projects" }, projects.map((p) =>
      h("li", { class: "card" },
        h("a", { href: `#/projects/${encodeURIComponent(p.id)}` }, p.name || p.id),
        p.description ? h("p", {}, p.description) : "",
        h("p", { class: "hint" }, h("code", {}, p.id))))));
  } catch (e) {
    failure(view, "Projects", e);
  }
}

async function project(id) {
  const view = page("Project");
  const enc = encodeURIComponent(id);
  // The tasks' runs are followed live until the view is left.
  let list = null;
  let left = false;
  leave = () => {
    left = true;
    list?.close();
  };
  const again = () => { if (!left) route(); };
  try {
    const [p, { tasks }, { knowledge }] = await Promise.all([
      api("GET", `/v1/projects/${enc}`), api("GET", `/v1/projects/${enc}/tasks`), api("GET", `/v1/projects/${enc}/knowledge`)]);
    if (left) return;
    list = taskList(p, tasks, again);
    view.querySelector("h1").textContent = p.name || p.id;
    view.append(
      p.description ? h("p", { id: "project-description" }, p.description) : "",
      h("p", {}, h("a", { href: `#/new?project=${enc}` }, "Start a session in this project")),
      editProjectForm(p, again),
      h("h2", {}, "Instructions"),
      p.instructions ? h("pre", { class: "doc", id: "instructions" }, p.instructions) : h("p", { class: "hint" }, "None."),
      h("h2", {}, `Tasks (${tasks.length})`),
      newTaskForm(p, again),
      list.el,
      h("h2", {}, `Knowledge (${knowledge.length})`),
      newKnowledgeForm(p, again),
      knowledge.length ? h("ul", { class: "cards", id: "knowledge" }, knowledge.map((k) =>
        h("li", { class: "card", "data-knowledge": k.id },
          h("p", {}, h("strong", { class: "knowledge-title" }, k.title), " ", (k.tags || []).map((t) => h("span", { class: "badge tag" }, t))),
          h("details", {}, h("summary", {}, "Read"), h("pre", { class: "doc knowledge-body" }, k.body)),
          editKnowledgeForm(p, k, again)))) : h("p", { class: "hint" }, "None."));
  } catch (e) {
    failure(view, "Project", e);
  }
}

function sessions() {
  const view = page("Sessions", h("p", {}, h("a", { href: "#/new", class: "button" }, "Start a session")));
  leave = sessionsList(view, () => failure(view, "Sessions", { status: 401, message: "token refused" }));
}

// usageTable renders /v1/usage groups (or one total) as a table.
function usageTable(id, caption, keyTitle, rows) {
  const n = (v) => Number(v || 0).toLocaleString();
  return h("div", { class: "table-wrap" }, h("table", { id, class: "usage-table" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, [keyTitle, "Calls", "Input", "Output", "Cache read", "Cache write", "Cost (USD)"]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", { "data-key": r.key || "" },
      h("td", { "data-label": keyTitle }, r.label ?? (r.key || "(none)")),
      h("td", { "data-label": "Calls" }, n(r.calls)), h("td", { "data-label": "Input" }, n(r.input_tokens)),
      h("td", { "data-label": "Output" }, n(r.output_tokens)), h("td", { "data-label": "Cache read" }, n(r.cache_read_tokens)),
      h("td", { "data-label": "Cache write" }, n(r.cache_write_tokens)),
      h("td", { "data-label": "Cost (USD)", class: "cost" }, `$${r.cost_usd}`))))));
}

// usage shows what the model calls cost, at catalog prices: per project,
// and per day, task and model (of one project, or of all).
async function usage() {
  const projectSel = h("select", { id: "usage-project" }, h("option", { value: "" }, "All projects"));
  const view = page("Usage and cost", h("p", { class: "hint" },
    "Every model call through the broker's proxy, priced from its model catalog; refused calls count as calls at $0."),
    h("p", {}, h("label", { for: "usage-project" }, "Project "), projectSel));
  const body = h("div", { id: "usage-tables" });
  view.append(body);
  const load = async () => {
    clear(body);
    const q = projectSel.value ? `project=${encodeURIComponent(projectSel.value)}&` : "";
    try {
      const [day, task, session, model] = await Promise.all(["day", "task", "session", "model"]
        .map((g) => api("GET", `/v1/usage?${q}group_by=${g}`)));
      body.append(
        usageTable("usage-by-day", "Per day (UTC)", "Day", day.groups || []),
        usageTable("usage-by-task", "Per task", "Task", task.groups || []),
        usageTable("usage-by-session", "Per session", "Session", (session.groups || []).map((g) => ({ ...g,
          label: g.key ? h("a", { href: `#/sessions/${encodeURIComponent(g.key)}` }, g.key) : "(none)" }))),
        usageTable("usage-by-model", "Per model", "Model", model.groups || []));
    } catch (e) {
      failure(view, "Usage", e);
    }
  };
  projectSel.addEventListener("change", load);
  try {
    const { projects } = await api("GET", "/v1/projects");
    projectSel.append(...projects.map((p) => h("option", { value: p.id }, p.name || p.id)));
    const totals = await Promise.all(projects.map((p) => api("GET", `/v1/usage?project=${encodeURIComponent(p.id)}`)));
    view.insertBefore(usageTable("usage-by-project", "Per project", "Project",
      projects.map((p, i) => ({ ...totals[i].total, key: p.id, label: p.name || p.id }))), body);
  } catch (e) {
    failure(view, "Usage", e);
  }
  await load();
}

async function newSession(projectID) {
  const projectSel = h("select", { id: "project", required: true });
  const err = h("p", { class: "notice", role: "alert", id: "new-error" });
  const pickers = agentPickers("", (text) => { err.textContent = text; });
  const policySel = h("select", { id: "policy" },
    [["ask", "Ask me"], ["allow-project-tools", "Allow this broker's tools, ask for others"], ["allow-all", "Allow everything"]]
      .map(([v, t]) => h("option", { value: v }, t)));
  const cwd = h("input", { id: "cwd", type: "text", spellcheck: "false" });
  const title = h("input", { id: "title", type: "text" });
  const prompt = h("textarea", { id: "first-prompt", rows: 3 });
  const submit = h("button", { type: "submit", id: "start" }, "Start session");
  const form = h("form", { id: "new-session", class: "card" },
    field("project", "Project", projectSel),
    ...pickers.elements,
    field("policy", "Permissions", policySel),
    field("cwd", "Working directory", cwd, "On the broker's machine; empty: the broker's default."),
    field("title", "Title (optional)", title),
    field("first-prompt", "First prompt (optional)", prompt),
    submit, err);
  const view = page("Start a session", form);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    submit.disabled = true;
    setStatus("Starting the agent…");
    const body = {
      project: projectSel.value, agent: pickers.agent(), model: pickers.model(),
      credential: pickers.credential(),
      permission_policy: policySel.value, cwd: cwd.value.trim() || undefined,
      title: title.value.trim() || undefined, prompt: prompt.value.trim() || undefined,
    };
    try {
      const created = await api("POST", "/v1/sessions", body);
      pickers.forget();
      sessionStorage.setItem(`agentbroker.viewer.${created.session.id}`, created.viewer_token);
      setStatus("");
      location.hash = `#/sessions/${encodeURIComponent(created.session.id)}`;
    } catch (e) {
      setStatus("");
      err.textContent = `The session did not start: ${e.message}`;
      submit.disabled = false;
    }
  });

  let agents;
  try {
    let projects;
    [{ projects }, agents] = await Promise.all([api("GET", "/v1/projects"), offeredAgents()]);
    projectSel.append(...projects.map((p) => h("option", { value: p.id, selected: p.id === projectID || undefined }, p.name || p.id)));
    if (!projects.length) err.textContent = "Create a project first (agentbroker project create).";
  } catch (e) {
    failure(view, "Start a session", e);
    return;
  }
  await pickers.setAgents(agents);
}

document.getElementById("signout").addEventListener("click", () => {
  forget();
  for (const k of Object.keys(sessionStorage)) if (k.startsWith("agentbroker.")) sessionStorage.removeItem(k);
  go("#/");
});
window.addEventListener("hashchange", route);
takeViewerLink();
route();
