// Forms that create and change projects, tasks and knowledge through the
// broker's API. Each is a <details> that opens on demand; what the person
// typed goes into the request as JSON, and back onto the page as text.

import { api } from "./api.js";
import { h } from "./dom.js";
import { field } from "./agents.js";

export const TASK_STATUSES = ["draft", "queued", "in_progress", "completed", "failed", "cancelled"];

// editor builds a form in a <details>. fields: [{name, label, kind:
// "text"|"textarea"|"select", value, options, required, hint}]. submit
// gets the values by name and returns a promise; done runs after it.
export function editor(id, summary, fields, submit, done) {
  const err = h("p", { class: "notice", role: "alert", id: `${id}-error` });
  const controls = {};
  const els = fields.map((f) => {
    const fid = `${id}-${f.name}`;
    let c;
    if (f.kind === "textarea") c = h("textarea", { id: fid, rows: f.rows || 4, required: f.required }, f.value || "");
    else if (f.kind === "select") {
      c = h("select", { id: fid }, f.options.map((o) => h("option", { value: o, selected: o === f.value || undefined }, o.replace(/_/g, " "))));
    } else c = h("input", { id: fid, type: "text", value: f.value || "", required: f.required, spellcheck: f.spellcheck });
    controls[f.name] = c;
    return field(fid, f.label, c, f.hint);
  });
  const save = h("button", { type: "submit", id: `${id}-save` }, summary.startsWith("New") || summary.startsWith("Add") ? "Create" : "Save");
  const form = h("form", { id, class: "edit-form" }, ...els, save, err);
  const box = h("details", { class: "editor" }, h("summary", {}, summary), form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    save.disabled = true;
    const values = {};
    for (const [k, c] of Object.entries(controls)) values[k] = c.value;
    try {
      const res = await submit(values);
      box.open = false;
      done?.(res);
    } catch (e) {
      err.textContent = `Not saved: ${e.message}`;
    } finally {
      save.disabled = false;
    }
  });
  return box;
}

export function newProjectForm(done) {
  return editor("new-project", "New project", [
    { name: "name", label: "Name", required: true },
    { name: "description", label: "Description", kind: "textarea", rows: 2 },
    { name: "repo_path", label: "Repository path (optional)", hint: "On the broker's machine: the default working directory of its sessions." },
    { name: "instructions", label: "Instructions for agents (optional)", kind: "textarea" },
  ], (v) => api("POST", "/v1/projects", v), done);
}

export function editProjectForm(p, done) {
  return editor("edit-project", "Edit project", [
    { name: "name", label: "Name", value: p.name, required: true },
    { name: "description", label: "Description", kind: "textarea", rows: 2, value: p.description },
    { name: "repo_path", label: "Repository path", value: p.repo_path },
    { name: "instructions", label: "Instructions for agents", kind: "textarea", value: p.instructions },
  ], (v) => api("PATCH", `/v1/projects/${encodeURIComponent(p.id)}`, v), done);
}

export function newTaskForm(p, done) {
  return editor("new-task", "New task", [
    { name: "title", label: "Title", required: true },
    { name: "description", label: "Description (the agent reads it)", kind: "textarea" },
    { name: "status", label: "Status", kind: "select", options: TASK_STATUSES, value: "draft" },
  ], (v) => api("POST", `/v1/projects/${encodeURIComponent(p.id)}/tasks`, v), done);
}

export function editTaskForm(p, t, done) {
  return editor(`edit-task-${t.id}`, "Edit", [
    { name: "title", label: "Title", value: t.title, required: true },
    { name: "description", label: "Description", kind: "textarea", value: t.description },
    { name: "status", label: "Status", kind: "select", options: TASK_STATUSES, value: t.status },
  ], (v) => api("PATCH", `/v1/projects/${encodeURIComponent(p.id)}/tasks/${encodeURIComponent(t.id)}`, v), done);
}

const tags = (s) => s.split(",").map((t) => t.trim()).filter(Boolean);

export function newKnowledgeForm(p, done) {
  return editor("new-knowledge", "Add knowledge", [
    { name: "title", label: "Title", required: true },
    { name: "body", label: "Text", kind: "textarea", required: true },
    { name: "tags", label: "Tags (comma-separated)" },
  ], (v) => api("POST", `/v1/projects/${encodeURIComponent(p.id)}/knowledge`, { ...v, tags: tags(v.tags) }), done);
}

export function editKnowledgeForm(p, k, done) {
  return editor(`edit-knowledge-${k.id}`, "Edit", [
    { name: "title", label: "Title", value: k.title, required: true },
    { name: "body", label: "Text", kind: "textarea", value: k.body, required: true },
    { name: "tags", label: "Tags (comma-separated)", value: (k.tags || []).join(", ") },
  ], (v) => api("PATCH", `/v1/projects/${encodeURIComponent(p.id)}/knowledge/${encodeURIComponent(k.id)}`, { ...v, tags: tags(v.tags) }), done);
}
