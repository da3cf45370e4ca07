// Compare 2 to 8 jobs: the target metric overlaid on wall-clock time since each job's
// start (which recipe reaches the target first), time to target as bars, and the spec
// fields that differ.
import uPlot from "/ui/vendor/uplot/uPlot.esm.js";
import { api } from "./api.js";
import { COLORS } from "./chart.js";
import { flatten, h, seconds, show } from "./dom.js";
import { onLeave } from "./main.js";

export async function compareView(ids) {
  const picker = h("form", { class: "toolbar", onsubmit: (e) => {
    e.preventDefault();
    const chosen = e.target.ids.value.split(/[\s,]+/).filter(Boolean);
    location.hash = `#/compare?ids=${chosen.map(encodeURIComponent).join(",")}`;
  } }, "Job ids ", h("input", { name: "ids", size: 60, value: ids.join(", ") }), h("button", { type: "submit" }, "Compare"));
  if (ids.length < 2 || ids.length > 8) {
    show(h("h1", {}, "Compare"), picker, h("p", { class: "muted" }, "Pick 2 to 8 jobs (select them in the jobs list, or paste their ids)."));
    return;
  }
  const jobs = await Promise.all(ids.map((id) => api(`/v1/jobs/${encodeURIComponent(id)}`)));
  const histories = await Promise.all(ids.map((id) => api(`/v1/jobs/${encodeURIComponent(id)}/metrics?max_points=2000`)));
  const target = jobs.map((j) => j.spec.training && j.spec.training.target).find(Boolean);
  const metric = target ? target.metric : "val_loss";

  // One x array for all jobs (uPlot aligns series on x): each job's points at their
  // seconds since that job's first metric.
  const byX = new Map();
  histories.forEach((history, i) => {
    const rows = history.items.filter((r) => r.data[metric] !== undefined);
    const start = history.items.length ? Date.parse(history.items[0].time) : 0;
    for (const r of rows) {
      const x = (Date.parse(r.time) - start) / 1000;
      if (!byX.has(x)) byX.set(x, new Array(jobs.length).fill(null));
      byX.get(x)[i] = r.data[metric];
    }
  });
  const xs = [...byX.keys()].sort((a, b) => a - b);
  const data = [xs, ...jobs.map((_, i) => xs.map((x) => byX.get(x)[i]))];
  const chartBox = h("div", { id: "compare-chart", class: "card", dataset: { series: String(jobs.length) } });

  const slowest = Math.max(...jobs.map((j) => (j.timings && j.timings.time_to_target_s) || 0), 1e-9);
  const bars = h("table", { id: "time-to-target" }, h("tbody", {}, jobs.map((job, i) => {
    const t = job.timings && job.timings.time_to_target_s;
    const bar = h("span", { class: "hbar" });
    bar.style.width = t ? `${(300 * t) / slowest}px` : "0";
    bar.style.background = COLORS[i % COLORS.length];
    return h("tr", {}, h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.name)), h("td", {}, bar, " ", t ? seconds(t) : "not reached"));
  })));

  const flat = jobs.map((j) => flatten(j.spec));
  const paths = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  const differing = paths.filter((p) => new Set(flat.map((f) => f[p])).size > 1);
  const diff = h("table", { id: "spec-diff" },
    h("thead", {}, h("tr", {}, h("th", {}, "field"), jobs.map((j) => h("th", {}, j.name)))),
    h("tbody", {}, differing.map((p) => h("tr", {}, h("td", {}, p), flat.map((f) => h("td", {}, f[p] === undefined ? "—" : f[p]))))));

  show(h("h1", {}, "Compare"), picker,
    h("h2", {}, `${metric} over wall time`), chartBox,
    h("h2", {}, "Time to target"), bars,
    h("h2", {}, `Spec fields that differ (${differing.length})`), differing.length ? diff : h("p", { class: "muted" }, "The specs are the same."));
  const plot = new uPlot({
    width: Math.max(320, chartBox.clientWidth - 10), height: 300, scales: { x: { time: false } },
    axes: [{ label: "seconds since the job's first metric" }, {}],
    series: [{ label: "s" }, ...jobs.map((j, i) => ({ label: j.name, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true }))],
  }, data, chartBox);
  onLeave(() => plot.destroy());
}
