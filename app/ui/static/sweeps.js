// Sweeps: the list, and one sweep live over its stream: leaderboard, trials by rung,
// what mattered, and the best configuration with a button that submits it.
import { api, Stream } from "./api.js";
import { fill, h, number, seconds, show, statusBadge } from "./dom.js";
import { onLeave } from "./main.js";

export async function sweepsView() {
  const page = await api("/v1/sweeps?limit=50");
  show(h("h1", {}, "Sweeps"), h("table", { id: "sweeps" },
    h("thead", {}, h("tr", {}, ["Name", "Status", "Trials", "Best", "Compute"].map((t) => h("th", {}, t)))),
    h("tbody", {}, page.items.length ? page.items.map((s) => h("tr", {},
      h("td", {}, h("a", { href: `#/sweeps/${encodeURIComponent(s.id)}` }, s.name)), h("td", {}, statusBadge(s.status)),
      h("td", {}, s.trials.length), h("td", {}, s.best ? number(s.best.best) : "—"), h("td", {}, seconds(s.compute_s))))
      : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No sweeps.")))));
}

function trialRow(trial) {
  return h("tr", {}, h("td", {}, trial.position), h("td", {}, Object.entries(trial.config).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")),
    h("td", {}, trial.state), h("td", {}, trial.epochs ?? "—"), h("td", {}, number(trial.best)), h("td", {}, seconds(trial.time_to_target_s)),
    h("td", {}, trial.job_id ? h("a", { href: `#/jobs/${encodeURIComponent(trial.job_id)}` }, "job") : "—"));
}

function render(box, sweep) {
  const trials = new Map(sweep.trials.map((t) => [t.position, t]));
  const head = () => h("thead", {}, h("tr", {}, ["#", "config", "state", "epochs", "best", "time to target", ""].map((t) => h("th", {}, t))));
  const rungs = [...new Set(sweep.trials.map((t) => t.rung))].sort((a, b) => a - b);
  const best = sweep.best;
  fill(box, 
    h("h1", {}, h("span", { id: "sweep-name" }, sweep.name), " ", statusBadge(sweep.status)),
    h("p", { class: "muted" }, `${sweep.strategy.name || ""} · objective ${JSON.stringify(sweep.objective)} · compute ${seconds(sweep.compute_s)}`),
    h("h2", {}, "Leaderboard"),
    h("table", { id: "leaderboard" }, head(), h("tbody", {}, sweep.leaderboard.map((p) => trials.get(p)).filter(Boolean).map(trialRow))),
    h("h2", {}, "Trials by rung"),
    rungs.map((rung) => [h("h3", {}, `Rung ${rung} (${sweep.rungs[rung] ?? "?"} epochs)`),
      h("table", { class: "rung" }, head(), h("tbody", {}, sweep.trials.filter((t) => t.rung === rung).map(trialRow)))]),
    h("h2", {}, "What mattered"),
    h("ul", { id: "explanation" }, sweep.summary.map((line) => h("li", {}, line))),
    sweep.explanation.map((effect) => h("details", {}, h("summary", {}, effect.path),
      h("ul", {}, effect.values.map((v) => h("li", {}, `${v.value}: ${v.reached}/${v.trials} reached, best time ${seconds(v.best_time_to_target_s)}, best ${number(v.best)}`))))),
    h("h2", {}, "Best configuration"),
    best ? h("div", { class: "card", id: "best" }, h("pre", {}, JSON.stringify(best.config, null, 2)),
      h("p", {}, `time to target ${seconds(best.time_to_target_s)}`, best.speedup ? ` · ${best.speedup.toFixed(2)}× the base` : ""),
      h("button", { type: "button", id: "submit-best", onclick: async () => {
        const job = await api("/v1/jobs", { method: "POST", body: best.spec });
        location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
      } }, "Submit it")) : h("p", { class: "muted" }, "No trial has finished yet."));
}

export async function sweepView(id) {
  let sweep;
  try { sweep = await api(`/v1/sweeps/${encodeURIComponent(id)}`); } catch (error) {
    if (error.status === 404) { show(h("h1", { id: "not-found" }, "Sweep not found")); return; }
    throw error;
  }
  const box = h("div", { id: "sweep", dataset: { updates: "0" } });
  show(box);
  render(box, sweep);
  if (sweep.status !== "running") return;
  let updates = 0;
  const stream = new Stream(`/v1/sweeps/${encodeURIComponent(id)}/stream`, {
    resumable: false,
    onMessage: (message) => {
      if (message.type !== "sweep") return;
      updates += 1;
      render(box, message.data);
      box.dataset.updates = String(updates);
    },
  });
  onLeave(() => stream.stop());
}
