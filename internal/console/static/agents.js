// The agent, model and credential pickers, shared by the start form and a
// task's run form: the agents this broker launches (agents.json), the
// models the proxy accepts for each (/v1/models), the credential kinds
// each agent takes.

import { api, AGENT_TITLES, CREDENTIAL_TITLES } from "./api.js";
import { h, clear } from "./dom.js";

// field is a labelled form control, with an optional hint.
export const field = (id, label, control, hint) => h("div", { class: "field" },
  h("label", { for: id }, label), control, hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : "");

// offeredAgents is the broker's agents.json: [{name, title, catalog_agent, credentials, not_installed?}].
export const offeredAgents = () => api("GET", "/console/agents.json");

// modelOption renders one picker entry: deprecated models say so, with
// their replacement.
function modelOption(m) {
  let text = `${m.display_name} (${m.id})`;
  if (m.default) text += " — default";
  if (m.status === "deprecated") text += ` — deprecated, use ${m.replacement}`;
  else if (m.status === "preview") text += " — preview";
  return h("option", { value: m.id, "data-status": m.status, "data-replacement": m.replacement || undefined,
    selected: m.default || undefined }, text);
}

// agentPickers builds the pickers; their ids are prefix + "agent",
// "model", "model-note", "credential", "secret" and "via-proxy". err
// receives what went wrong. The model picker's data-loaded names the agent
// whose models it holds, once they are in.
export function agentPickers(prefix, err) {
  const id = (n) => prefix + n;
  const agentSel = h("select", { id: id("agent") });
  const modelSel = h("select", { id: id("model"), "aria-describedby": `${id("model")}-hint ${id("model-note")}` });
  const modelNote = h("p", { class: "notice", id: id("model-note"), "aria-live": "polite" });
  const credSel = h("select", { id: id("credential") });
  const secret = h("input", { id: id("secret"), type: "password", autocomplete: "off" });
  const viaProxy = h("input", { id: id("via-proxy"), type: "checkbox" });
  const secretField = h("div", { class: "field", hidden: true },
    h("label", { for: id("secret") }, "Key or token"), secret,
    h("p", {}, viaProxy, " ", h("label", { for: id("via-proxy") }, "Send my key's calls through the broker's proxy")));
  const needsSecret = () => ["api-key", "oauth-token"].includes(credSel.value);

  let agents = [];
  let picked = 0;
  // loadModels fills the model picker and the credential kinds for the
  // agent chosen.
  const loadModels = async () => {
    const agent = agents.find((a) => a.name === agentSel.value);
    const mine = ++picked;
    modelSel.dataset.loaded = "";
    clear(modelSel);
    clear(credSel);
    modelNote.textContent = "";
    secretField.hidden = true;
    if (!agent) return;
    // The broker's key through its proxy first, where the agent takes it.
    const kinds = [...agent.credentials].sort((a, b) => (b === "platform-proxy") - (a === "platform-proxy"));
    credSel.append(...kinds.map((k) => h("option", { value: k }, CREDENTIAL_TITLES[k] || k)));
    secretField.hidden = !needsSecret();
    if (!agent.catalog_agent) {
      modelSel.append(h("option", { value: "" }, "The agent picks its own"));
      modelSel.dataset.agent = "";
      modelSel.dataset.loaded = agent.name;
      return;
    }
    try {
      const models = await api("GET", `/v1/models?agent=${encodeURIComponent(agent.catalog_agent)}`);
      if (mine !== picked) return;
      modelSel.append(...models.map(modelOption));
      noteModel();
      modelSel.dataset.agent = agent.catalog_agent;
      modelSel.dataset.loaded = agent.name;
    } catch (e) {
      if (mine === picked) err(`Models: ${e.message}`);
    }
  };
  // A deprecated model can still be picked (the proxy accepts it until
  // its shutdown); say so, and name what replaces it.
  const noteModel = () => {
    const o = modelSel.selectedOptions[0];
    modelNote.textContent = o?.dataset.status === "deprecated"
      ? `${o.value} is deprecated: the broker will stop accepting it. Its replacement is ${o.dataset.replacement}.` : "";
  };
  agentSel.addEventListener("change", loadModels);
  modelSel.addEventListener("change", noteModel);
  credSel.addEventListener("change", () => {
    secretField.hidden = !needsSecret();
  });

  return {
    elements: [
      field(id("agent"), "Agent", agentSel),
      field(id("model"), "Model", modelSel, "Only the models the broker's proxy accepts for this agent."), modelNote,
      field(id("credential"), "Credential", credSel), secretField,
    ],
    // setAgents offers the agents and loads the first one's models.
    async setAgents(offered) {
      agents = offered;
      agentSel.append(...agents.map((a) => h("option", { value: a.name, "data-installed": a.not_installed ? "no" : undefined },
        (a.title || AGENT_TITLES[a.name] || a.name) + (a.not_installed ? " — not installed (agentbroker agents install " + a.name + ")" : ""))));
      if (!agents.length) err("This broker is configured to launch no agent.");
      await loadModels();
    },
    agent: () => agentSel.value,
    model: () => modelSel.value || undefined,
    // credential is the request's credential; forget clears its secret.
    credential() {
      const c = { kind: credSel.value };
      if (!secretField.hidden && secret.value) {
        c.secret = secret.value;
        c.via_proxy = viaProxy.checked || undefined;
      }
      return c;
    },
    forget() {
      secret.value = "";
    },
  };
}
