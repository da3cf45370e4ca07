// Building the page from nodes, never from HTML text: every string a user wrote (job names, tags, log
// lines, specs) becomes a text node, so it shows as text and never runs.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "value") node.value = value;
    else if (name === "checked") node.checked = Boolean(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function show(...children) {
  const view = document.getElementById("view");
  return fill(view, children);

}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  if (value < 1) return `${(value * 1000).toFixed(0)} ms`;
  if (value < 120) return `${value.toFixed(1)} s`;
  return `${(value / 60).toFixed(1)} min`;
}

export function number(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (Math.abs(value) >= 1e6) return value.toExponential(2);
  return Number.isInteger(value) ? String(value) : value.toPrecision(digits);
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}` }, status);
}

export function errorText(error) {
  return h("p", { class: "error" }, String(error.message || error));
}

// A spec flattened to dotted paths, for diffs: {"a": {"b": 1}} -> {"a.b": 1}.
export function flatten(value, prefix = "", out = {}) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out[prefix] = JSON.stringify(value);
  }
  return out;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// replaceChildren without the holes: a skipped part (null, false) leaves nothing behind.
export function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return node;
}
