// A job's page: live curves from its websocket (resumed with after= on reconnect), the
// status timeline, where the time went, what `auto` chose, the model, the log tail,
// checkpoints, and clone-and-edit.
import { api, download, Stream } from "./api.js";
import { Curves, targetOf } from "./chart.js";
import { errorText, fill, h, number, seconds, show, statusBadge } from "./dom.js";
import { onLeave } from "./main.js";
import { specEditor } from "./editor.js";

const PHASES = [["queued_s", "queued", "#b0bec5"], ["startup_s", "startup", "#90a4ae"], ["probe_s", "probe", "#ffb74d"],
  ["compile_s", "compile", "#ba68c8"], ["train_s", "train", "#1565c0"], ["eval_s", "eval", "#2e7d32"], ["checkpoint_s", "checkpoint", "#8d6e63"]];
const LOG_LINES = 200;

function timingBar(timings) {
  if (!timings) return h("p", { class: "muted" }, "No timings yet.");
  const parts = PHASES.filter(([k]) => timings[k]);
  const total = parts.reduce((sum, [k]) => sum + timings[k], 0) || 1;
  const bar = h("div", { class: "bar", id: "timing-bar" }, parts.map(([k, label, color]) => {
    const span = h("span", { title: `${label}: ${seconds(timings[k])}`, dataset: { phase: label } });
    span.style.width = `${(100 * timings[k]) / total}%`;
    span.style.background = color;
    return span;
  }));
  const legend = h("div", { class: "legend" }, parts.map(([k, label, color]) => {
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = color;
    return h("span", {}, swatch, `${label} ${seconds(timings[k])}`);
  }));
  return [bar, legend, h("p", { class: "muted" }, `total ${seconds(timings.total_s)} · time to target ${seconds(timings.time_to_target_s)} · ${number(timings.samples_per_s, 3)} samples/s`)];
}

function kv(object) {
  return h("dl", { class: "kv" }, Object.entries(object || {}).map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]));
}

export function summaryRequest(spec) {
  const dataset = spec.dataset;
  if (typeof dataset === "string" && dataset !== "synthetic") return { model: spec.model, dataset };
  const synthetic = typeof dataset === "object" && dataset ? dataset : {};
  const classes = synthetic.task === "regression" ? synthetic.targets || 1 : synthetic.classes || 10;
  return { model: spec.model, input_shape: synthetic.input_shape || [1, 28, 28], classes };
}

export function summaryTable(summary) {
  return [h("p", {}, `${summary.params.toLocaleString()} parameters · ${summary.flops_per_sample.toLocaleString()} FLOPs per sample`),
    h("table", { class: "summary" }, h("thead", {}, h("tr", {}, ["#", "layer", "output", "params", "FLOPs"].map((t) => h("th", {}, t)))),
      h("tbody", {}, summary.layers.map((l) => h("tr", {}, h("td", {}, l.index), h("td", {}, l.type), h("td", {}, JSON.stringify(l.output_shape)), h("td", {}, l.params), h("td", {}, l.flops)))))];
}

export async function jobView(id) {
  let job;
  try { job = await api(`/v1/jobs/${encodeURIComponent(id)}`); } catch (error) {
    if (error.status === 404) { show(h("h1", { id: "not-found" }, "Job not found"), h("p", { class: "muted" }, `No job ${id} for this key.`)); return; }
    throw error;
  }
  const path = `/v1/jobs/${encodeURIComponent(id)}`;
  const header = h("div", {});
  const timeline = h("ol", { id: "timeline" });
  const logs = h("pre", { class: "log", id: "log-tail" });
  const curves = h("div", { id: "curves", class: "card", dataset: { points: "0", gaps: "0", dupes: "0", lastSeq: "0", reconnects: "0", state: "loading" } });
  const lossBox = h("div", {}), metricBox = h("div", {}), lrBox = h("div", {});
  const timingBox = h("div", {}), settingsBox = h("div", {}), modelBox = h("div", {}), checkpointBox = h("div", {});
  const editorBox = h("div", {});
  const axis = h("select", { id: "x-axis", onchange: () => schedule() }, ["step", "epoch", "wall"].map((a) => h("option", { value: a }, a)));
  const smoothing = h("input", { id: "smoothing", type: "range", min: 0, max: 0.99, step: 0.01, value: 0.6, oninput: () => schedule() });
  const liveState = h("span", { id: "live-state", class: "muted" });
  const target = targetOf(job.spec);
  const charts = [new Curves(lossBox, { title: "loss", metrics: ["train_loss", "val_loss"] }),
    new Curves(metricBox, { title: target ? target.metric : "validation", metrics: target && !/loss/.test(target.metric) ? [target.metric] : ["val_accuracy", "val_mae", "val_mse"] }),
    new Curves(lrBox, { title: "learning rate", metrics: ["lr"], height: 160 })];
  for (const chart of charts) chart.target = target;
  onLeave(() => charts.forEach((c) => c.destroy()));

  const points = new Map();
  const statuses = new Map();
  const logLines = [];
  let lastSeq = 0, gaps = 0, dupes = 0, frame = null, stream = null;

  function renderHeader() {
    const live = ["queued", "running"].includes(job.status);
    fill(header, h("h1", {}, h("span", { id: "job-name" }, job.name), " ", statusBadge(job.status)),
      h("p", { class: "muted" }, `${job.id} · attempt ${job.attempt}${job.restarts ? `, ${job.restarts} restarts` : ""} · ${job.params.toLocaleString()} params · tags: `, h("span", { class: "tags" }, job.tags.join(", ") || "none")),
      job.reason ? h("p", {}, "Reason: ", h("span", {}, job.reason)) : null,
      h("div", { class: "toolbar" },
        live ? h("button", { id: "cancel-job", type: "button", onclick: async () => { await api(`${path}/cancel`, { method: "POST" }); await refresh(); } }, "Cancel") : null,
        h("button", { id: "clone-job", type: "button", onclick: () => openEditor(job.spec) }, "Clone and edit"),
        h("a", { href: `#/compare?ids=${encodeURIComponent(job.id)}` }, "Compare with…")));
    fill(timingBox, ...[timingBar(job.timings)].flat());
    fill(settingsBox, job.result && job.result.settings ? kv(job.result.settings) : h("p", { class: "muted" }, "Known when the job has run."),
      job.result ? h("details", {}, h("summary", {}, "result"), kv({ best: job.result.best, final: job.result.final, epochs: job.result.epochs, steps: job.result.steps, stopped: job.result.stopped })) : null);
  }

  function openEditor(spec) {
    fill(editorBox, specEditor(spec, { onSubmitted: (created) => { location.hash = `#/jobs/${encodeURIComponent(created.id)}`; } }));
    editorBox.scrollIntoView();
  }

  function render() {
    frame = null;
    const ordered = [...points.values()].sort((a, b) => a.seq - b.seq);
    const start = ordered.length ? Date.parse(ordered[0].time) : 0;
    for (const chart of charts) chart.update(ordered, { axis: axis.value, smoothing: Number(smoothing.value), start });
    Object.assign(curves.dataset, { points: String(points.size), gaps: String(gaps), dupes: String(dupes), lastSeq: String(lastSeq) });
    fill(timeline, ...[...statuses.values()].sort((a, b) => a.seq - b.seq).map((e) =>
      h("li", {}, h("span", { class: "muted" }, new Date(e.time).toLocaleTimeString()), " ", statusBadge(e.data.status), e.data.reason ? ` — ${e.data.reason}` : "")));
    logs.textContent = logLines.slice(-LOG_LINES).join("\n");
  }
  const schedule = () => { if (!frame) frame = requestAnimationFrame(render); };

  function take(event) {
    if (event.type === "metric") {
      // An epoch's mean train_loss would zigzag against the per-step line: kept apart.
      const { train_loss: epochLoss, ...data } = event.data;
      const point = event.data.scope === "epoch" ? { ...data, epoch_train_loss: epochLoss } : event.data;
      points.set(event.seq, { ...point, seq: event.seq, time: event.time });
    }
    else if (event.type === "status") statuses.set(event.seq, event);
    else if (event.type === "log") logLines.push(`${event.time.slice(11, 19)} ${event.data.level || ""} ${event.data.message || ""}`);
  }

  async function refresh() {
    job = await api(path);
    renderHeader();
    const items = (await api(`${path}/checkpoints`)).items;
    fill(checkpointBox, items.length ? h("table", { id: "checkpoints" }, h("tbody", {}, items.map((c) => h("tr", {},
      h("td", {}, c.kind, c.epoch !== null ? ` epoch ${c.epoch}` : ""), h("td", {}, kv(c.metrics)),
      h("td", {}, h("button", { type: "button", onclick: () => download(`/v1/checkpoints/${encodeURIComponent(c.id)}/download`, `${c.id}.safetensors`) }, "Download"),
        " ", h("button", { type: "button", onclick: () => openEditor({ ...job.spec, name: `${job.name} fine-tune`, init: { checkpoint: c.id, strict: false } }) }, "Fine-tune")))))) : h("p", { class: "muted" }, "No checkpoints."),
    ["succeeded", "failed", "cancelled"].includes(job.status) ? h("form", { class: "toolbar", onsubmit: async (e) => {
      e.preventDefault();
      try { const created = await api(`${path}/resume`, { method: "POST", body: { epochs: Number(e.target.epochs.value) } }); location.hash = `#/jobs/${encodeURIComponent(created.id)}`; }
      catch (error) { e.target.append(errorText(error)); }
    } }, "Resume for ", h("input", { name: "epochs", type: "number", min: 1, value: 5, size: 4 }), " more epochs ", h("button", { type: "submit" }, "Resume")) : null);
  }

  show(header,
    h("div", { class: "card" }, h("div", { class: "toolbar" }, "x-axis ", axis, " smoothing ", smoothing, liveState,
      h("button", { id: "reconnect", type: "button", onclick: () => stream && stream.drop() }, "Reconnect")), curves),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Status"), timeline),
      h("div", { class: "card" }, h("h2", {}, "Where the time went"), timingBox),
      h("div", { class: "card" }, h("h2", {}, "What auto chose"), settingsBox),
      h("div", { class: "card" }, h("h2", {}, "Checkpoints"), checkpointBox)),
    h("h2", {}, "Log tail"), logs,
    h("h2", {}, "Model"), modelBox, editorBox);
  curves.append(lossBox, metricBox, lrBox);
  await refresh();

  api("/v1/models/summary", { method: "POST", body: summaryRequest(job.spec) })
    .then((s) => fill(modelBox, ...summaryTable(s)))
    .catch((error) => fill(modelBox, errorText(error)));

  // The chart's history comes downsampled from the metrics route; live points then come
  // from the stream, which starts right after the newest seq that history covers.
  const [history, early] = await Promise.all([api(`${path}/metrics?max_points=2000`), api(`${path}/events?after=0&limit=500`)]);
  for (const event of early.items) if (event.type !== "metric" && event.seq <= history.last_seq) take(event);
  for (const row of history.items) take({ ...row, type: "metric" });
  if (history.last_seq > 500) {
    const tail = await api(`${path}/events?after=${Math.max(500, history.last_seq - 300)}&limit=300`);
    for (const event of tail.items) if (event.type !== "metric" && event.seq <= history.last_seq) take(event);
  }
  lastSeq = history.last_seq;
  schedule();
  stream = new Stream(`${path}/stream`, {
    after: history.last_seq,
    onMessage: (event, { duplicate }) => {
      if (duplicate) { dupes += 1; return; }
      if (event.seq !== lastSeq + 1) gaps += 1;
      lastSeq = event.seq;
      take(event);
      if (event.type === "status" || event.type === "result") refresh().catch(() => {});
      schedule();
    },
    onState: (state) => {
      liveState.textContent = state;
      curves.dataset.state = state;
      curves.dataset.reconnects = String(stream ? stream.reconnects : 0);
      if (state === "complete") refresh().then(schedule).catch(() => {});
    },
  });
  onLeave(() => stream.stop());
}
