// The playground's wiring: tabs, the API key field, server status, and hand-offs between panels.

import { apiKey, getJSON, setApiKey } from "./api.js";
import { initChat } from "./chat.js";
import { initEdit } from "./edit.js";
import { initGenerate } from "./generate.js";
import { initHistory } from "./history.js";
import { $ } from "./ui.js";

const TABS = ["generate", "edit", "chat", "history"];
let current = "generate";
let historyStale = true;

const app = {
  activeTab: () => current,
  model: () => $("gen-model").value,
  changed: () => {
    historyStale = true;
    refreshStatus();
  },
  reuse: (params) => {
    generate.fill(params);
    show("generate");
  },
  editImage: (blob, name) => {
    edit.editImage(blob, name);
    show("edit");
  },
};

const generate = initGenerate(app);
const edit = initEdit(app);
initChat(app);
const history = initHistory(app);

function show(tab, focus = false) {
  if (!TABS.includes(tab)) tab = "generate";
  current = tab;
  for (const name of TABS) {
    const button = $(`tab-${name}`);
    button.setAttribute("aria-selected", String(name === tab));
    button.tabIndex = name === tab ? 0 : -1;
    $(`panel-${name}`).hidden = name !== tab;
  }
  if (focus) $(`tab-${tab}`).focus();
  if (location.hash !== `#${tab}`) replaceHash(tab);
  if (tab === "history" && historyStale) {
    historyStale = false;
    history.load(true);
  }
}

function replaceHash(tab) {
  window.history.replaceState(null, "", `#${tab}`);
}

for (const name of TABS) $(`tab-${name}`).addEventListener("click", () => show(name));
document.querySelector(".tabs").addEventListener("keydown", (event) => {
  const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
  if (!step) return;
  const next = TABS[(TABS.indexOf(current) + step + TABS.length) % TABS.length];
  show(next, true);
});
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

// API key: kept in this browser only, sent as a Bearer token.
const keyInput = $("api-key");
const keyState = $("key-state");
keyInput.value = apiKey();
keyState.textContent = apiKey() ? "saved" : "";
keyInput.addEventListener("change", () => {
  setApiKey(keyInput.value);
  keyState.textContent = apiKey() ? "saved" : "cleared";
  loadModels();
  historyStale = true;
});
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  keyInput.dispatchEvent(new Event("change"));
});

async function refreshStatus() {
  const status = $("server-status");
  try {
    const health = await fetch("/health").then((r) => r.json());
    const state = health.status === "ok" ? `queue ${health.queue_depth}` : health.status; // "warming" at start-up
    status.textContent = `${health.default_model} \u00b7 ${state}`;
    status.className = "server-status ok";
    return health;
  } catch {
    status.textContent = "server unreachable";
    status.className = "server-status down";
    return null;
  }
}

async function loadModels() {
  const health = await refreshStatus();
  try {
    const models = await getJSON("/v1/models");
    // Catalog models first, then the OpenAI names that are aliases of them.
    const list = [...models.data].sort((a, b) => Number(a.id !== a.root) - Number(b.id !== b.root));
    generate.setModels(list, health?.default_model);
  } catch {
    // Without a (valid) key the list is refused; the default alias still works once a key is set.
  }
}

show(location.hash.slice(1) || "generate");
loadModels();
