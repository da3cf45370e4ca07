// Training curves on uPlot: an x-axis of step, epoch or wall time, an exponential moving
// average with the raw line kept faint, and the target drawn as a line with a marker
// where it was first reached.
import uPlot from "/ui/vendor/uplot/uPlot.esm.js";

export const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037", "#ad1457"];

function ema(values, weight) {
  if (!weight) return values;
  let last = null;
  return values.map((v) => {
    if (v === null || v === undefined || !Number.isFinite(v)) return null;
    last = last === null ? v : last * weight + v * (1 - weight);
    return last;
  });
}

export function xOf(point, axis, start) {
  if (axis === "epoch") return point.scope === "epoch" ? point.epoch : point.epoch - 1 + 0.5;
  if (axis === "wall") return (Date.parse(point.time) - start) / 1000;
  return point.step;
}

// A chart of some metrics of `points` (metric events' data plus time), rebuilt on update.
export class Curves {
  constructor(container, { title, metrics, height = 260 }) {
    this.container = container;
    this.title = title;
    this.metrics = metrics;
    this.height = height;
    this.target = null;
    this.plot = null;
  }

  update(points, { axis = "step", smoothing = 0, start = 0 } = {}) {
    const present = this.metrics.filter((m) => points.some((p) => p[m] !== undefined && p[m] !== null));
    const rows = points.filter((p) => present.some((m) => p[m] !== undefined && p[m] !== null))
      .map((p) => ({ x: xOf(p, axis, start), p }))
      .filter((r) => Number.isFinite(r.x))
      .sort((a, b) => a.x - b.x);
    const xs = rows.map((r) => r.x);
    const series = [{ label: axis === "wall" ? "seconds" : axis }];
    const data = [xs];
    present.forEach((metric, i) => {
      const raw = rows.map((r) => (r.p[metric] === undefined ? null : r.p[metric]));
      const color = COLORS[i % COLORS.length];
      if (smoothing && metric === "train_loss") {
        series.push({ label: `${metric} (raw)`, stroke: `${color}40`, spanGaps: true });
        data.push(raw);
        series.push({ label: metric, stroke: color, width: 2, spanGaps: true });
        data.push(ema(raw, smoothing));
      } else {
        series.push({ label: metric, stroke: color, width: 1.5, spanGaps: true, points: { show: rows.length < 60 } });
        data.push(raw);
      }
    });
    const target = this.target && present.includes(this.target.metric) ? this.target : null;
    const reachedAt = target ? rows.find((r) => target.reached(r.p[target.metric])) : null;
    this.drawn = { target, reachedAt };
    const draw = (u) => {
      const { target, reachedAt } = this.drawn;
      if (!target) return;
      const ctx = u.ctx;
      const y = u.valToPos(target.value, "y", true);
      ctx.save();
      ctx.strokeStyle = "#ef6c00";
      ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
      if (reachedAt) {
        const x = u.valToPos(reachedAt.x, "x", true);
        ctx.setLineDash([]); ctx.fillStyle = "#ef6c00";
        ctx.beginPath(); ctx.arc(x, y, 6, 0, 2 * Math.PI); ctx.fill();
      }
      ctx.restore();
    };
    const width = Math.max(320, this.container.clientWidth - 10);
    const shape = `${axis}|${series.map((s) => s.label).join(",")}`;
    if (this.plot && this.shape === shape) {
      this.plot.setData(data);
    } else {
      if (this.plot) this.plot.destroy();
      this.plot = new uPlot({
        title: this.title, width, height: this.height, series,
        scales: { x: { time: false } },
        axes: [{ label: axis === "wall" ? "wall time (s)" : axis }, {}],
        hooks: { draw: [draw] },
      }, data, this.container);
      this.shape = shape;
    }
    this.container.dataset.reachedAt = reachedAt ? String(reachedAt.x) : "";
  }

  destroy() { if (this.plot) this.plot.destroy(); this.plot = null; }
}

export function targetOf(spec) {
  const target = spec && spec.training && spec.training.target;
  if (!target) return null;
  const maximize = !/loss|mae|mse/.test(target.metric);
  return { ...target, reached: (v) => v !== undefined && v !== null && (maximize ? v >= target.value : v <= target.value) };
}
