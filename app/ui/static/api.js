// The same API a script uses: the key goes in the Authorization header, and on a
// websocket as the subprotocol pair ["taas.bearer", key]. Never in a URL.

const STORAGE = "taas.key";

export const key = {
  get: () => localStorage.getItem(STORAGE),
  set: (value) => localStorage.setItem(STORAGE, value),
  clear: () => localStorage.removeItem(STORAGE),
};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details || [];
  }
}

// `probe`: a sign-in attempt, whose 401 is its own answer rather than a lost session.
export async function api(path, { method = "GET", body, raw = false, probe = false } = {}) {
  const headers = { Authorization: `Bearer ${key.get() || ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !probe) window.dispatchEvent(new CustomEvent("taas:unauthorized"));
  if (!response.ok) {
    let parsed = null;
    try { parsed = await response.json(); } catch { /* not JSON: keep the status */ }
    throw new ApiError(response.status, parsed);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// Download an authenticated file: fetched with the header, handed to the browser as a blob.
export async function download(path, filename) {
  const response = await api(path, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// A websocket that resumes where it left off: each message's seq is remembered, and a
// reconnect asks for after=<last seq>, so nothing is lost or repeated. Closes 1000 (the
// stream is complete) and 44xx (the request itself is wrong) end it; anything else
// reconnects with a growing pause.
export class Stream {
  constructor(path, { after = 0, onMessage, onState = () => {}, resumable = true }) {
    this.path = path;
    this.after = after;
    this.onMessage = onMessage;
    this.onState = onState;
    this.resumable = resumable;
    this.stopped = false;
    this.reconnects = 0;
    this.pause = 500;
    this.connect();
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = this.resumable ? `?after=${this.after}` : "";
    const socket = new WebSocket(`${scheme}://${location.host}${this.path}${query}`, ["taas.bearer", key.get() || ""]);
    this.socket = socket;
    this.onState("connecting");
    socket.onopen = () => { this.pause = 500; this.onState("live"); };
    socket.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (this.resumable && typeof event.seq === "number") {
        if (event.seq <= this.after) return this.onMessage(event, { duplicate: true });
        this.after = event.seq;
      }
      this.onMessage(event, { duplicate: false });
    };
    socket.onclose = (close) => {
      if (this.socket !== socket || this.stopped) return;
      if (close.code === 1000) { this.onState("complete"); return; }
      if (close.code >= 4400 && close.code < 4500) {
        this.onState(`closed: ${close.reason || close.code}`);
        if (close.code === 4401) window.dispatchEvent(new CustomEvent("taas:unauthorized"));
        return;
      }
      this.onState("reconnecting");
      this.reconnects += 1;
      setTimeout(() => { if (!this.stopped) this.connect(); }, this.pause);
      this.pause = Math.min(this.pause * 2, 8000);
    };
  }

  // Drop the connection as a network failure would; the stream resumes from its last seq.
  drop() {
    if (this.socket && this.socket.readyState <= 1) this.socket.close(4000, "reconnect");
  }

  stop() {
    this.stopped = true;
    if (this.socket) this.socket.close(1000);
  }
}
