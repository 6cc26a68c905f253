// The OAuth consent page (internal/oauth): an MCP client the broker did not
// launch asks for access to a project's MCP server; a signed-in admin picks
// the project, the scopes, how long the connection lasts and its name, or
// denies. Without ?request=…, the page lists the connections, each with a
// Revoke button.
//
// Every call carries the admin token from this tab's sessionStorage as a
// bearer header: there is no cookie a cross-site form could ride.

import { api, credential, setCredential, forget } from "./api.js";
import { h, clear } from "./dom.js";

const main = document.getElementById("main");

const LIFETIMES = [
  ["1 hour", 3600],
  ["1 day", 86400],
  ["7 days", 7 * 86400],
  ["30 days", 30 * 86400],
  ["90 days", 90 * 86400],
];
const READ_SCOPES = ["project:read", "tasks:read", "knowledge:read"];

function page(title, ...children) {
  clear(main);
  main.append(h("h1", {}, title), ...children);
}

function signIn(then) {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  const err = h("p", { class: "notice", role: "alert", id: "signin-error" });
  const form = h("form", { id: "signin", class: "card" },
    h("label", { for: "token" }, "Admin token"), input,
    h("p", { class: "hint" }, "An MCP client asks to connect. Sign in as the broker's admin to decide."),
    h("button", { type: "submit" }, "Sign in"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    try {
      await api("GET", "/v1/projects", undefined, token);
    } catch (e) {
      err.textContent = e.status === 401 || e.status === 403 ? "That is not an admin token of this broker." : e.message;
      return;
    }
    setCredential({ kind: "admin", token });
    input.value = "";
    then();
  });
  page("Sign in", form);
  input.focus();
}

async function consent(id) {
  let req, projects;
  try {
    [req, { projects }] = await Promise.all([api("GET", `/v1/oauth/requests/${encodeURIComponent(id)}`), api("GET", "/v1/projects")]);
  } catch (e) {
    if (e.status === 401) {
      forget();
      return signIn(() => consent(id));
    }
    page("Connect an MCP client", h("p", { class: "notice", role: "alert" }, e.message));
    return;
  }
  const requested = new Set(req.requested_scopes || []);
  const project = h("select", { id: "project", required: true },
    projects.map((p) => h("option", { value: p.id }, `${p.name} (${p.id})`)));
  const scopes = req.scopes_supported.map((s) => {
    const box = h("input", { type: "checkbox", id: `scope-${s}`, value: s,
      checked: READ_SCOPES.includes(s) && (requested.size === 0 || requested.has(s)) });
    return h("div", {}, box, " ", h("label", { for: `scope-${s}` }, s, requested.has(s) ? " (asked for)" : ""));
  });
  const lifetime = h("select", { id: "lifetime" }, LIFETIMES.map(([t, s]) => h("option", { value: s, selected: s === 7 * 86400 }, t)));
  const name = h("input", { id: "name", value: req.client_name, maxlength: 200 });
  const err = h("p", { class: "notice", role: "alert", id: "consent-error" });
  const decide = async (decision) => {
    err.textContent = "";
    const body = { decision };
    if (decision === "approve") {
      body.project = project.value;
      body.scopes = scopes.map((d) => d.querySelector("input")).filter((b) => b.checked).map((b) => b.value);
      body.lifetime_seconds = Number(lifetime.value);
      body.name = name.value;
    }
    try {
      const res = await api("POST", `/v1/oauth/requests/${encodeURIComponent(id)}`, body);
      location.assign(res.redirect_to);
    } catch (e) {
      err.textContent = e.message;
    }
  };
  page("Connect an MCP client",
    h("div", { class: "card" },
      h("p", {}, h("strong", { id: "client-name" }, req.client_name), " asks for access to a project's MCP server."),
      h("p", { class: "hint" }, "It will be sent back to ", h("code", { id: "redirect-uri" }, req.redirect_uri), "."),
      h("label", { for: "project" }, "Project"), project,
      h("fieldset", {}, h("legend", {}, "Scopes"), scopes),
      h("label", { for: "lifetime" }, "Connection lasts"), lifetime,
      h("label", { for: "name" }, "Connection name"), name,
      h("p", {},
        h("button", { type: "button", id: "approve", onclick: () => decide("approve") }, "Allow"), " ",
        h("button", { type: "button", id: "deny", onclick: () => decide("deny") }, "Deny")),
      err));
}

async function connections() {
  let list;
  try {
    ({ connections: list } = await api("GET", "/v1/oauth/connections"));
  } catch (e) {
    if (e.status === 401) {
      forget();
      return signIn(connections);
    }
    page("MCP connections", h("p", { class: "notice", role: "alert" }, e.message));
    return;
  }
  const rows = list.map((c) => h("tr", { dataset: { connection: c.id } },
    h("td", {}, c.name), h("td", {}, c.client_name), h("td", {}, c.project), h("td", {}, c.scopes.join(" ")),
    h("td", {}, c.expires), h("td", {}, c.revoked ? `revoked (${c.revoked_reason || ""})` : "active"),
    h("td", {}, c.revoked ? "" : h("button", { type: "button", class: "revoke", onclick: async () => {
      await api("DELETE", `/v1/oauth/connections/${encodeURIComponent(c.id)}`);
      connections();
    } }, "Revoke"))));
  page("MCP connections",
    list.length ? h("table", { id: "connections" },
      h("thead", {}, h("tr", {}, ["Name", "Client", "Project", "Scopes", "Expires", "State", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows))
      : h("p", {}, "No MCP client has connected through OAuth yet."));
}

const id = new URLSearchParams(location.search).get("request");
const start = id ? () => consent(id) : connections;
if (credential()?.kind === "admin") start();
else signIn(start);
