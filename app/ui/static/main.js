// The dashboard's entry: sign-in, then a view per #fragment (#/jobs, #/jobs/<id>, ...).
import { api, key } from "./api.js";
import { errorText, h, show } from "./dom.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { compareView } from "./compare.js";
import { sweepsView, sweepView } from "./sweeps.js";
import { submitView, fleetView } from "./submit.js";

let cleanup = [];

// A view registers what to stop (its websockets, timers) when the user leaves it.
export function onLeave(fn) { cleanup.push(fn); }

function signIn(message) {
  const input = h("input", { type: "password", id: "key", size: 50, autocomplete: "off", placeholder: "taas_… or the admin token" });
  const status = h("p", { class: "error", id: "sign-in-error" }, message || "");
  const form = h("form", {
    id: "sign-in",
    onsubmit: async (event) => {
      event.preventDefault();
      key.set(input.value.trim());
      try {
        await api("/v1/jobs?limit=1", { probe: true });
        route();
      } catch (error) {
        key.clear();
        status.textContent = error.status === 401 ? "That key is not valid." : String(error.message);
      }
    },
  }, h("h1", {}, "Sign in"),
  h("p", {}, "Paste a tenant key or the admin token once; this browser keeps it."),
  input, " ", h("button", { type: "submit" }, "Sign in"), status);
  show(form);
  input.focus();
}

const ROUTES = [
  [/^#\/jobs\/([^/?]+)$/, (m) => jobView(decodeURIComponent(m[1]))],
  [/^#\/compare(?:\?ids=(.*))?$/, (m) => compareView(m[1] ? m[1].split(",").map(decodeURIComponent) : [])],
  [/^#\/sweeps\/([^/?]+)$/, (m) => sweepView(decodeURIComponent(m[1]))],
  [/^#\/sweeps$/, () => sweepsView()],
  [/^#\/submit$/, () => submitView()],
  [/^#\/fleet$/, () => fleetView()],
  [/^(#\/jobs)?$/, () => jobsView()],
];

async function route() {
  for (const fn of cleanup.splice(0)) fn();
  const signOut = document.getElementById("sign-out");
  if (!key.get()) { signOut.hidden = true; signIn(); return; }
  signOut.hidden = false;
  const hash = location.hash || "#/jobs";
  for (const [pattern, view] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      try { await view(match); } catch (error) { show(errorText(error)); }
      return;
    }
  }
  show(h("p", { class: "error" }, "No such page."));
}

window.addEventListener("hashchange", route);
window.addEventListener("taas:unauthorized", () => { key.clear(); for (const fn of cleanup.splice(0)) fn(); signIn("The key was refused; sign in again."); });
document.getElementById("sign-out").addEventListener("click", () => { key.clear(); route(); });
route();
