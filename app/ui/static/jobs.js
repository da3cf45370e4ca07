// The jobs list: filters, the API's cursors, live rows for jobs that are running, and
// cancel (one, or every selected job).
import { api, Stream } from "./api.js";
import { errorText, fill, h, number, seconds, show, statusBadge } from "./dom.js";
import { onLeave } from "./main.js";

const STATUSES = ["", "queued", "running", "succeeded", "failed", "cancelled"];
const LIVE = new Set(["queued", "running"]);
const MAX_LIVE_ROWS = 20;

export function bestMetric(job) {
  const best = job.result && job.result.best;
  if (!best) return "—";
  const target = job.spec.training && job.spec.training.target;
  const name = target ? target.metric : Object.keys(best).find((k) => k.startsWith("val_")) || Object.keys(best)[0];
  return name && best[name] !== undefined ? `${name} ${number(best[name])}` : "—";
}

function progressCell(job, epoch) {
  const total = job.spec.training ? job.spec.training.epochs : null;
  const done = job.result && job.result.epochs !== undefined ? job.result.epochs : epoch;
  if (!total) return "—";
  return [h("progress", { max: total, value: done || 0 }), ` ${done || 0}/${total}`];
}

export async function jobsView() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const state = { status: params.get("status") || "", tag: params.get("tag") || "", cursors: [null] };
  const selected = new Set();
  const streams = new Map();
  onLeave(() => { for (const s of streams.values()) s.stop(); });

  const statusSelect = h("select", { id: "filter-status", onchange: () => { state.status = statusSelect.value; state.cursors = [null]; load(); } },
    STATUSES.map((s) => h("option", { value: s }, s || "any status")));
  statusSelect.value = state.status;
  const tagInput = h("input", { id: "filter-tag", placeholder: "tag", value: state.tag, onchange: () => { state.tag = tagInput.value.trim(); state.cursors = [null]; load(); } });
  const message = h("p", { class: "error", id: "jobs-message" });
  const body = h("tbody", { id: "jobs-body" });
  const previous = h("button", { id: "page-previous", type: "button", onclick: () => { state.cursors.pop(); state.cursors.pop(); load(); } }, "← Newer");
  const next = h("button", { id: "page-next", type: "button", onclick: () => load() }, "Older →");
  let nextCursor = null;

  const cancel = async (ids) => {
    message.textContent = "";
    for (const id of ids) {
      try { await api(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" }); }
      catch (error) { message.textContent += `${id}: ${error.message}\n`; }
    }
    selected.clear();
    await refreshRows(ids);
  };

  const rowFor = (job, epoch) => h("tr", { id: `job-${job.id}`, dataset: { status: job.status } },
    h("td", {}, h("input", { type: "checkbox", checked: selected.has(job.id), onchange: (e) => (e.target.checked ? selected.add(job.id) : selected.delete(job.id)) })),
    h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "job-name" }, job.name), h("div", { class: "muted" }, job.id)),
    h("td", {}, statusBadge(job.status), job.reason ? h("div", { class: "muted" }, job.reason) : null),
    h("td", {}, progressCell(job, epoch)),
    h("td", {}, bestMetric(job)),
    h("td", {}, seconds(job.timings && job.timings.time_to_target_s)),
    h("td", {}, number(job.timings && job.timings.samples_per_s, 3)),
    h("td", {}, `${job.attempt}`, job.restarts ? ` (${job.restarts} restarts)` : ""),
    h("td", { class: "tags" }, job.tags.join(", ")),
    h("td", {}, LIVE.has(job.status) ? h("button", { type: "button", class: "cancel", onclick: () => cancel([job.id]) }, "Cancel") : null));

  const epochs = new Map();
  async function refreshRows(ids) {
    for (const id of ids) {
      const row = document.getElementById(`job-${id}`);
      if (!row) continue;
      try {
        const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
        row.replaceWith(rowFor(job, epochs.get(id)));
        if (!LIVE.has(job.status) && streams.has(id)) { streams.get(id).stop(); streams.delete(id); }
      } catch (error) { message.textContent = String(error.message); }
    }
  }

  function follow(job) {
    if (streams.size >= MAX_LIVE_ROWS || streams.has(job.id)) return;
    let pending = null;
    streams.set(job.id, new Stream(`/v1/jobs/${encodeURIComponent(job.id)}/stream`, {
      after: job.last_seq,
      onMessage: (event) => {
        if (event.type === "metric" && event.data.epoch !== undefined) epochs.set(job.id, event.data.scope === "epoch" ? event.data.epoch : event.data.epoch - 1);
        if (!pending) pending = setTimeout(() => { pending = null; refreshRows([job.id]); }, 700);
      },
    }));
  }

  async function load() {
    for (const s of streams.values()) s.stop();
    streams.clear();
    const cursor = state.cursors[state.cursors.length - 1];
    const query = new URLSearchParams({ limit: "25" });
    if (state.status) query.set("status", state.status);
    if (state.tag) query.set("tag", state.tag);
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/v1/jobs?${query}`);
      nextCursor = page.next_cursor;
      fill(body, ...page.items.map((job) => rowFor(job)));
      if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 10, class: "muted" }, "No jobs.")));
      for (const job of page.items) if (LIVE.has(job.status)) follow(job);
      state.cursors.push(nextCursor);
      next.disabled = !nextCursor;
      previous.disabled = state.cursors.length <= 2;
    } catch (error) { message.textContent = String(error.message); }
  }

  show(h("h1", {}, "Jobs"),
    h("div", { class: "toolbar" }, statusSelect, tagInput,
      h("button", { type: "button", id: "cancel-selected", onclick: () => cancel([...selected]) }, "Cancel selected"),
      h("button", { type: "button", id: "compare-selected", onclick: () => { location.hash = `#/compare?ids=${[...selected].map(encodeURIComponent).join(",")}`; } }, "Compare selected"),
      h("a", { href: "#/submit" }, "Submit a job")),
    message,
    h("table", {}, h("thead", {}, h("tr", {}, ["", "Name", "Status", "Progress", "Best", "Time to target", "Samples/s", "Attempt", "Tags", ""].map((t) => h("th", {}, t)))), body),
    h("div", { class: "toolbar" }, previous, next));
  await load();
}

export { errorText };
