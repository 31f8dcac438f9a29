// History: GET /v1/gouache/history (newest first) as a gallery; reuse an entry as a prompt, or delete it.

import { deleteJSON, getBlob, getJSON } from "./api.js";
import { $, ErrorBox, el, formatSeconds, formatWhen } from "./ui.js";

const PAGE = 24;
const KIND_NAMES = { generation: "generated", edit: "edited", variation: "variation" };

export function initHistory(app) {
  const grid = $("history-grid");
  const more = $("history-more");
  const status = $("history-status");
  const count = $("history-count");
  const errors = new ErrorBox($("history-error"));
  let offset = 0;
  let loading = false;
  let urls = [];

  status.addEventListener("change", () => load(true));
  $("history-refresh").addEventListener("click", () => load(true));
  more.addEventListener("click", () => load(false));

  async function load(fresh) {
    if (loading) return;
    loading = true;
    errors.clear();
    if (fresh) offset = 0;
    const query = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (status.value) query.set("status", status.value);
    try {
      const page = await getJSON(`/v1/gouache/history?${query}`);
      if (fresh) {
        grid.replaceChildren();
        urls.forEach((url) => URL.revokeObjectURL(url));
        urls = [];
      }
      page.data.forEach((entry) => grid.append(card(entry)));
      offset += page.data.length;
      more.hidden = !page.has_more;
      if (!grid.children.length) grid.append(el("li", { class: "empty-note" }, "Nothing here yet: generate an image."));
      const shown = grid.querySelectorAll(".entry").length;
      count.textContent = shown ? `${shown}${page.has_more ? "+" : ""} entries` : "";
    } catch (err) {
      errors.show(err, "The history could not be loaded");
    } finally {
      loading = false;
    }
  }

  /** Images are fetched with the API key (an <img src> could not send it), then shown from memory. */
  async function show(image, img, link) {
    try {
      const url = URL.createObjectURL(await getBlob(image.url));
      urls.push(url);
      img.src = url;
      link.href = url;
    } catch (err) {
      img.alt = `Image unavailable: ${err.message}`;
    }
  }

  function card(entry) {
    const image = entry.images[0];
    const params = entry.params;
    const facts = [
      KIND_NAMES[entry.kind] ?? entry.kind,
      entry.resolved?.size ?? params.size,
      entry.resolved?.quality ?? params.quality,
      entry.seed !== null ? `seed ${entry.seed}` : null,
      entry.timings?.total_s !== undefined ? formatSeconds(entry.timings.total_s) : null,
      entry.resolved_model ?? entry.model,
      entry.masked ? "masked" : null,
      formatWhen(entry.created_at),
    ].filter(Boolean);
    const img = image ? el("img", { alt: entry.prompt ?? "image" }) : null;
    const download = image
      ? el("a", { class: "button ghost small", download: `gouache-${image.seed ?? entry.id}.${image.format}` }, "Download")
      : null;
    if (image) show(image, img, download);
    return el("li", { class: "entry", dataset: { id: entry.id, status: entry.status, imageUrl: image?.url } },
      el("div", { class: "thumb" },
        img ?? el("span", { class: "hint" }, entry.status),
        entry.images.length > 1 ? el("span", { class: "badge" }, `${entry.images.length} images`) : null),
      el("div", { class: "body" },
        el("p", { class: "prompt", title: entry.prompt ?? "" }, entry.prompt || "(no prompt)"),
        el("div", { class: "facts" }, facts.map((f) => el("span", {}, f)),
          entry.status !== "succeeded" ? el("span", { class: `status-${entry.status}` }, entry.status) : null),
        entry.error ? el("p", { class: "entry-error" }, entry.error.message) : null,
        el("div", { class: "buttons" },
          entry.prompt ? el("button", { type: "button", class: "ghost small reuse",
            onclick: () => app.reuse({ ...params, seed: entry.seed ?? params.seed }) }, "Reuse") : null,
          download,
          el("button", { type: "button", class: "ghost small delete",
            onclick: (e) => remove(entry, e.currentTarget.closest(".entry"), e.currentTarget) }, "Delete"))));
  }

  async function remove(entry, node, button) {
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = "Delete for good?";
      button.classList.add("danger");
      setTimeout(() => {
        if (button.isConnected) {
          button.dataset.confirm = "";
          button.textContent = "Delete";
          button.classList.remove("danger");
        }
      }, 4000);
      return;
    }
    button.disabled = true;
    try {
      await deleteJSON(`/v1/gouache/history/${encodeURIComponent(entry.id)}`);
      node.remove();
      offset = Math.max(0, offset - 1);
      const shown = grid.querySelectorAll(".entry").length;
      count.textContent = shown ? `${shown} entries` : "";
    } catch (err) {
      button.disabled = false;
      errors.show(err, "The entry could not be deleted");
    }
  }

  return { load };
}
