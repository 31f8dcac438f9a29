// Edit: upload images, paint a mask or draw markup, POST /v1/images/edits (multipart, streamed), compare
// before and after.

import { costOf, events, postForm } from "./api.js";
import { MaskPainter } from "./mask.js";
import {
  $, ErrorBox, MIME, Progress, b64ToBlob, downloadLink, el, formatCost, formatSeconds, metaList,
  numberValue, submitOnCtrlEnter, value,
} from "./ui.js";

const ACCEPTED = ["image/png", "image/jpeg", "image/webp"];
const MAX_IMAGES = 16;

export function initEdit(app) {
  const form = $("edit-form");
  const fields = {
    files: $("edit-files"), prompt: $("edit-prompt"), size: $("edit-size"), quality: $("edit-quality"),
    seed: $("edit-seed"), strength: $("edit-strength"), partials: $("edit-partials"), format: $("edit-format"),
  };
  const uploadsList = $("edit-uploads");
  const tools = $("edit-tools");
  const maskState = $("edit-mask-state");
  const wrap = $("edit-canvas-wrap");
  const submit = $("edit-submit");
  const cancel = $("edit-cancel");
  const compare = $("edit-compare");
  const before = $("edit-before");
  const after = $("edit-after");
  const frames = $("edit-frames");
  const meta = $("edit-meta");
  const errors = new ErrorBox($("edit-error"), form);
  const progress = new Progress($("edit-progress"));
  const painter = new MaskPainter($("edit-image"), $("edit-mask"), describeMask);
  let uploads = []; // {blob, name, url}
  let controller = null;
  let resultUrls = [];

  submitOnCtrlEnter(fields.prompt, form);
  fields.files.addEventListener("change", () => {
    add([...fields.files.files]);
    fields.files.value = "";
  });
  for (const input of tools.querySelectorAll("input[name=tool]")) {
    input.addEventListener("change", () => { painter.tool = input.value; });
  }
  const colour = $("edit-colour");
  for (const input of tools.querySelectorAll("input[name=edit-mode]")) {
    input.addEventListener("change", () => {
      painter.mode = input.value;
      painter.mask.classList.toggle("markup", input.value === "markup");
      $("edit-colour-label").hidden = input.value !== "markup";
      $("edit-invert").hidden = input.value === "markup"; // a markup needs transparent pixels
      describeMask();
    });
  }
  colour.addEventListener("input", () => { painter.colour = colour.value; });
  $("edit-brush").addEventListener("input", (e) => { painter.size = Number(e.target.value); });
  $("edit-clear").addEventListener("click", () => painter.clear());
  $("edit-invert").addEventListener("click", () => painter.invert());
  $("edit-compare-range").addEventListener("input", (e) => {
    compare.querySelector(".compare-view").style.setProperty("--split", `${e.target.value}%`);
  });
  wrap.addEventListener("dragover", (e) => { e.preventDefault(); wrap.classList.add("dragging"); });
  wrap.addEventListener("dragleave", () => wrap.classList.remove("dragging"));
  wrap.addEventListener("drop", (e) => {
    e.preventDefault();
    wrap.classList.remove("dragging");
    add([...e.dataTransfer.files]);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!controller) run();
  });
  window.addEventListener("resize", fit);
  // An image loaded while this tab is hidden ("Edit" from another tab) is fitted once the tab is shown.
  new ResizeObserver(fit).observe(wrap);
  cancel.addEventListener("click", () => controller?.abort());

  /** Scale the canvases to the space available, keeping the image's aspect (painting maps back to pixels). */
  function fit() {
    if (!painter.loaded || wrap.classList.contains("empty")) return;
    const { width, height } = painter.image;
    const scale = Math.min((wrap.clientWidth - 2) / width, (window.innerHeight * 0.7) / height);
    for (const canvas of [painter.image, painter.mask]) {
      canvas.style.width = `${Math.floor(width * scale)}px`;
      canvas.style.height = `${Math.floor(height * scale)}px`;
    }
  }

  function describeMask() {
    const share = painter.coverage();
    const percent = Math.max(1, Math.round(share * 100));
    if (share <= 0) maskState.textContent = "No mask: the whole image is redrawn (image-to-image).";
    else if (painter.mode === "markup") {
      maskState.textContent = `Markup: ${percent} % of the image is drawn over; the area under the strokes `
        + "is repainted following the prompt, the strokes themselves do not appear.";
    } else maskState.textContent = `Mask: ${percent} % of the image will be repainted; the rest is kept.`;
    maskState.dataset.coverage = share.toFixed(4);
  }

  function add(files) {
    errors.clear();
    const wrong = files.filter((f) => !ACCEPTED.includes(f.type));
    if (wrong.length) {
      errors.show({ message: `${wrong[0].name} is not a PNG, JPEG or WebP image.` }, "Cannot use that file");
    }
    const fresh = files.filter((f) => ACCEPTED.includes(f.type))
      .map((f) => ({ blob: f, name: f.name, url: URL.createObjectURL(f) }));
    const wasEmpty = uploads.length === 0;
    uploads = [...uploads, ...fresh].slice(0, MAX_IMAGES);
    renderUploads();
    if (wasEmpty && uploads.length) loadBase();
  }

  function remove(index) {
    URL.revokeObjectURL(uploads[index].url);
    uploads.splice(index, 1);
    renderUploads();
    if (index === 0) loadBase();
  }

  function renderUploads() {
    uploadsList.replaceChildren(...uploads.map((u, i) => el("li", { class: i === 0 ? "base" : "" },
      el("img", { src: u.url, alt: u.name }),
      i === 0 ? "edited" : "reference",
      el("button", { type: "button", title: `Remove ${u.name}`, "aria-label": `Remove ${u.name}`,
        onclick: () => remove(i) }, "\u00d7"))));
  }

  async function loadBase() {
    if (!uploads.length) {
      wrap.classList.add("empty");
      tools.disabled = true;
      return;
    }
    const image = new Image();
    image.src = uploads[0].url;
    try {
      await image.decode();
    } catch {
      errors.show({ message: `${uploads[0].name} could not be read as an image.` }, "Cannot use that file");
      return;
    }
    painter.load(image);
    wrap.classList.remove("empty");
    fit();
    tools.disabled = false;
    showCompare(false);
  }

  /** Load an image made elsewhere in the playground as the image to edit. */
  function editImage(blob, name) {
    uploads.forEach((u) => URL.revokeObjectURL(u.url));
    uploads = [];
    add([new File([blob], name, { type: blob.type })]);
  }

  async function run() {
    errors.clear();
    if (!uploads.length) {
      errors.show({ message: "Choose an image to edit first.", param: "image" }, "Nothing to edit");
      fields.files.focus();
      return;
    }
    const prompt = value(fields.prompt);
    if (!prompt) {
      errors.show({ message: "Write a prompt: what should the painted area show?", param: "prompt" });
      return;
    }
    const format = fields.format.value;
    const partialImages = Number(fields.partials.value);
    const data = new FormData();
    const entries = {
      prompt, model: app.model(), size: value(fields.size) ?? "auto", quality: fields.quality.value,
      output_format: format, n: 1, stream: "true", partial_images: partialImages,
      seed: numberValue(fields.seed), strength: numberValue(fields.strength),
    };
    for (const [key, v] of Object.entries(entries)) if (v !== undefined) data.append(key, String(v));
    for (const u of uploads) data.append("image[]", u.blob, u.name);
    const masked = painter.coverage() > 0;
    const markup = masked && painter.mode === "markup";
    if (markup) data.append("markup", await painter.toMarkupBlob(), "markup.png");
    else if (masked) data.append("mask", await painter.toBlob(), "mask.png");

    controller = new AbortController();
    submit.disabled = true;
    submit.textContent = "Editing\u2026";
    cancel.hidden = false;
    resultUrls.forEach((url) => URL.revokeObjectURL(url));
    resultUrls = [];
    frames.replaceChildren();
    meta.replaceChildren();
    progress.start("Uploading");
    let partials = 0;
    let result = null;
    try {
      const response = await postForm("/v1/images/edits", data, controller.signal);
      const cost = costOf(response);
      progress.set("Drawing", 0.02);
      before.src = uploads[0].url;
      for await (const event of events(response)) {
        if (event.type === "image_edit.partial_image") {
          partials += 1;
          const url = URL.createObjectURL(b64ToBlob(event.b64_json, MIME[format]));
          resultUrls.push(url);
          showAfter(url, "partial");
          frames.append(el("figure", { class: "partial-frame" }, el("img", { src: url, alt: `Preview ${partials}` }),
            el("figcaption", {}, `${partials}`)));
          progress.set(`Preview ${partials} of ${partialImages}`, partials / (partialImages + 1));
        } else if (event.type === "image_edit.completed") {
          const blob = b64ToBlob(event.b64_json, MIME[format]);
          result = { ...event, blob, url: URL.createObjectURL(blob) };
          resultUrls.push(result.url);
        }
      }
      if (!result) throw new Error("The server closed the stream before sending the edited image.");
      showAfter(result.url, "final");
      const seconds = progress.elapsed();
      meta.replaceChildren(
        metaList([
          ["Seed", result.seed], ["Size", result.size], ["Quality", result.quality],
          ["Mask", markup ? "markup" : masked ? "painted area" : "none (image-to-image)"],
          ["Images", uploads.length], ["Time", formatSeconds(seconds)], ["Cost", formatCost(cost)],
          ["Tokens", result.usage?.total_tokens],
        ]),
        el("div", { class: "buttons" },
          downloadLink(result.url, `gouache-edit-${result.seed}.${format}`),
          el("button", { type: "button", class: "ghost small",
            onclick: () => editImage(result.blob, `gouache-edit-${result.seed}.${format}`) }, "Keep editing this")),
      );
    } catch (err) {
      if (err.name === "AbortError") errors.show({ message: "Cancelled." }, "Cancelled");
      else errors.show(err, "The edit could not be made");
    } finally {
      controller = null;
      submit.disabled = false;
      submit.textContent = "Edit";
      cancel.hidden = true;
      progress.stop();
      app.changed();
    }
  }

  function showAfter(url, state) {
    after.src = url;
    after.alt = state === "final" ? "After" : "Preview while editing";
    compare.dataset.state = state;
    showCompare(true);
  }

  function showCompare(visible) {
    compare.hidden = !visible;
    $("edit-output").classList.toggle("has-result", visible);
    fit();
  }

  return { editImage };
}
