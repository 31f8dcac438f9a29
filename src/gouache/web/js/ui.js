// Small DOM and formatting helpers shared by the panels.

export const $ = (id) => document.getElementById(id);

export const MIME = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp" };

/** Create an element: el("a", {href: "#", class: "x"}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function b64ToBlob(b64, mime) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: mime });
}

export function formatSeconds(s) {
  return s < 10 ? `${s.toFixed(1)} s` : `${Math.round(s)} s`;
}

/** Hosted-equivalent dollars, or "-" when the server did not say. */
export function formatCost(usd) {
  if (usd === null || usd === undefined) return "-";
  return usd < 0.01 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(3)}`;
}

export function formatWhen(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

/** A trimmed field value, or undefined when empty. */
export function value(input) {
  const v = input.value.trim();
  return v === "" ? undefined : v;
}

export function numberValue(input) {
  const v = value(input);
  return v === undefined ? undefined : Number(v);
}

/** A definition list of [label, value] pairs for a result. */
export function metaList(pairs) {
  return el("dl", {}, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", { dataset: { field: k.toLowerCase() } }, v))));
}

/** Ctrl/Cmd+Enter in `field` submits `form`. */
export function submitOnCtrlEnter(field, form) {
  field.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

/** An error box that names the problem and marks the offending field. */
export class ErrorBox {
  constructor(box, form) {
    this.box = box;
    this.form = form;
  }

  clear() {
    this.box.hidden = true;
    this.box.replaceChildren();
    this.form?.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
  }

  show(err, title = "That did not work") {
    this.clear();
    const message = err?.message || String(err);
    this.box.append(el("strong", {}, title), el("span", { class: "message" }, message));
    this.box.hidden = false;
    // "size", "image[0]" and "tools[0].size" all name the field called "size" / "image".
    const param = err?.param ? String(err.param).replace(/^tools\[\d+\]\./, "").replace(/\[.*$/, "") : null;
    const field = param && this.form?.querySelector(`[name="${CSS.escape(param)}"]`);
    if (field) {
      field.setAttribute("aria-invalid", "true");
      field.focus();
    }
  }
}

/** A progress bar with a status line and an elapsed-time counter. */
export class Progress {
  constructor(line) {
    this.line = line;
    this.bar = line.querySelector("progress");
    this.text = line.querySelector(".progress-text");
    this.timer = null;
    this.started = 0;
    this.label = "";
  }

  start(label) {
    this.started = performance.now();
    this.bar.removeAttribute("value"); // indeterminate until the first event
    this.line.hidden = false;
    this.set(label);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.render(), 200);
  }

  set(label, fraction) {
    this.label = label;
    if (fraction !== undefined) this.bar.value = Math.min(1, fraction);
    this.render();
  }

  elapsed() {
    return (performance.now() - this.started) / 1000;
  }

  render() {
    this.text.textContent = `${this.label} \u00b7 ${formatSeconds(this.elapsed())}`;
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.line.hidden = true;
  }
}

/** A download link for an image blob. */
export function downloadLink(url, filename, label = "Download") {
  return el("a", { class: "button ghost small", href: url, download: filename }, label);
}
