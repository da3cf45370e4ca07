// Submit a job from a form (parameters and FLOPs shown before it is sent; the seed job in
// one click), and the fleet: workers, their devices, busy or idle, and the queue per device.
import { api } from "./api.js";
import { h, show, errorText, seconds } from "./dom.js";
import { summaryRequest, summaryTable } from "./job.js";

// The seed job is the POST /v1/jobs example in the OpenAPI document: one definition.
async function seedSpec() {
  const doc = await api("/openapi.json");
  const post = doc.paths["/v1/jobs"].post;
  const examples = post.requestBody.content["application/json"].examples || {};
  const first = examples.seed || Object.values(examples)[0];
  if (!first) throw new Error("the API document has no example job");
  return first.value;
}

function field(label, input) { return h("label", {}, `${label} `, input); }

export async function submitView() {
  const datasets = (await api("/v1/datasets?limit=100")).items;
  const form = h("form", { class: "stack card", id: "submit-form" });
  const dataset = h("select", { name: "dataset" }, h("option", { value: "synthetic" }, "synthetic (built-in)"),
    datasets.map((d) => h("option", { value: d.id }, `${d.name} (${d.samples} samples, ${JSON.stringify(d.input_shape)})`)));
  const preset = h("select", { name: "preset" }, ["mlp", "cnn", "resnet"].map((p) => h("option", { value: p }, p)));
  const inputs = {
    name: h("input", { name: "name", value: "my-job", required: true }),
    width: h("input", { name: "width", type: "number", min: 1, value: 64 }),
    depth: h("input", { name: "depth", type: "number", min: 1, value: 2 }),
    optimizer: h("select", { name: "optimizer" }, ["adamw", "adam", "sgd", "rmsprop"].map((o) => h("option", { value: o }, o))),
    lr: h("input", { name: "lr", type: "number", step: "any", value: 0.001 }),
    schedule: h("select", { name: "schedule" }, ["constant", "cosine", "onecycle"].map((s) => h("option", { value: s }, s))),
    batch: h("input", { name: "batch", value: "64" }),
    epochs: h("input", { name: "epochs", type: "number", min: 1, value: 5 }),
    metric: h("select", { name: "metric" }, ["", "val_accuracy", "val_loss"].map((m) => h("option", { value: m }, m || "no target"))),
    value: h("input", { name: "value", type: "number", step: "any", value: 0.9 }),
    tags: h("input", { name: "tags", placeholder: "comma, separated" }),
  };
  const summary = h("div", { id: "submit-summary" });
  const message = h("div", { id: "submit-message" });
  const spec = () => {
    const batch = inputs.batch.value.trim();
    const training = { epochs: Number(inputs.epochs.value), batch_size: /^\d+$/.test(batch) ? Number(batch) : batch };
    if (inputs.metric.value) training.target = { metric: inputs.metric.value, value: Number(inputs.value.value) };
    return {
      name: inputs.name.value, dataset: dataset.value,
      model: { preset: preset.value, width: Number(inputs.width.value), depth: Number(inputs.depth.value) },
      optimizer: { name: inputs.optimizer.value, lr: Number(inputs.lr.value) },
      schedule: { name: inputs.schedule.value }, training,
      tags: inputs.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    };
  };
  const submit = async (body) => {
    message.replaceChildren();
    try { const job = await api("/v1/jobs", { method: "POST", body }); location.hash = `#/jobs/${encodeURIComponent(job.id)}`; }
    catch (error) { message.replaceChildren(errorText(error)); }
  };
  form.append(field("Name", inputs.name), field("Dataset", dataset), field("Preset", preset), field("Width", inputs.width), field("Depth", inputs.depth),
    field("Optimizer", inputs.optimizer), field("Learning rate", inputs.lr), field("Schedule", inputs.schedule),
    field("Batch size (a number, auto or full)", inputs.batch), field("Epochs", inputs.epochs), field("Target", inputs.metric), field("reaching", inputs.value), field("Tags", inputs.tags),
    h("div", { class: "toolbar" },
      h("button", { type: "button", id: "check", onclick: async () => {
        try { summary.replaceChildren(...summaryTable(await api("/v1/models/summary", { method: "POST", body: summaryRequest(spec()) }))); }
        catch (error) { summary.replaceChildren(errorText(error)); }
      } }, "Check the model"),
      h("button", { type: "submit", id: "submit" }, "Submit")));
  form.addEventListener("submit", (e) => { e.preventDefault(); submit(spec()); });
  show(h("h1", {}, "Submit a job"),
    h("p", {}, h("button", { type: "button", id: "submit-seed", onclick: async () => {
      try { await submit(await seedSpec()); } catch (error) { message.replaceChildren(errorText(error)); }
    } }, "Submit the seed job"), " the example from the API console, on synthetic data."),
    message, form, summary);
}

export async function fleetView() {
  const [workers, queued] = await Promise.all([api("/v1/workers"), api("/v1/jobs?status=queued&limit=200")]);
  const depth = new Map();
  for (const job of queued.items) {
    const device = (job.spec.resources && job.spec.resources.device) || "auto";
    depth.set(device, (depth.get(device) || 0) + 1);
  }
  const now = Date.now();
  show(h("h1", {}, "Fleet"),
    h("table", { id: "workers" }, h("thead", {}, h("tr", {}, ["Worker", "Host", "Device", "State", "Job", "Last seen"].map((t) => h("th", {}, t)))),
      h("tbody", {}, workers.items.length ? workers.items.map((w) => h("tr", {}, h("td", {}, w.id), h("td", {}, w.hostname), h("td", {}, w.device),
        h("td", {}, !w.alive ? "lost" : w.job_id ? "busy" : "idle"),
        h("td", {}, w.job_id ? h("a", { href: `#/jobs/${encodeURIComponent(w.job_id)}` }, w.job_id) : "—"),
        h("td", {}, `${seconds((now - Date.parse(w.last_seen_at)) / 1000)} ago`))) : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No workers.")))),
    h("h2", {}, "Queue by device"),
    h("table", { id: "queue" }, h("tbody", {}, depth.size ? [...depth].map(([d, n]) => h("tr", {}, h("td", {}, d), h("td", {}, n))) : h("tr", {}, h("td", { class: "muted" }, "Nothing queued.")))));
}
