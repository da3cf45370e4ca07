// A job spec in an editor, checked by POST /v1/models/summary as it is typed (the model's
// shapes, parameters and FLOPs), submitted as a new job by POST /v1/jobs.
import { api } from "./api.js";
import { debounce, fill, h } from "./dom.js";
import { summaryRequest, summaryTable } from "./job.js";

// What a job records besides what was asked: the layers a preset expanded to. A clone
// asks again with the preset alone.
function asSubmitted(spec) {
  const copy = JSON.parse(JSON.stringify(spec));
  if (copy.model && copy.model.preset) delete copy.model.layers;
  return copy;
}

export function specEditor(spec, { onSubmitted, title = "Clone and edit" }) {
  const text = h("textarea", { class: "spec", id: "spec-editor", spellcheck: "false" });
  text.value = JSON.stringify(asSubmitted(spec), null, 2);
  const check = h("div", { id: "spec-check" });
  const message = h("p", { class: "error", id: "spec-error" });
  const parse = () => {
    try { return JSON.parse(text.value); } catch (error) { message.textContent = `Not JSON: ${error.message}`; return null; }
  };
  const validate = debounce(async () => {
    message.textContent = "";
    const parsed = parse();
    if (!parsed) return;
    try { fill(check, ...summaryTable(await api("/v1/models/summary", { method: "POST", body: summaryRequest(parsed) }))); }
    catch (error) { fill(check); message.textContent = error.message; }
  }, 400);
  text.addEventListener("input", validate);
  validate();
  const submit = h("button", { type: "button", id: "spec-submit", onclick: async () => {
    const parsed = parse();
    if (!parsed) return;
    try { onSubmitted(await api("/v1/jobs", { method: "POST", body: parsed })); }
    catch (error) { message.textContent = error.message; }
  } }, "Submit as a new job");
  return h("div", { class: "card" }, h("h2", {}, title), text, h("div", { class: "toolbar" }, submit), message, check);
}
