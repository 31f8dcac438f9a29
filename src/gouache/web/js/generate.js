// Generate: POST /v1/images/generations with stream=true; partial images while it works, then the result.

import { costOf, events, postJSON } from "./api.js";
import {
  $, ErrorBox, MIME, Progress, b64ToBlob, downloadLink, el, formatCost, formatSeconds, metaList,
  numberValue, submitOnCtrlEnter, value,
} from "./ui.js";

export function initGenerate(app) {
  const form = $("gen-form");
  const fields = {
    prompt: $("gen-prompt"), model: $("gen-model"), size: $("gen-size"), quality: $("gen-quality"),
    format: $("gen-format"), n: $("gen-n"), seed: $("gen-seed"), partials: $("gen-partials"),
    negative: $("gen-negative"), steps: $("gen-steps"), guidance: $("gen-guidance"),
    compression: $("gen-compression"),
  };
  const submit = $("gen-submit");
  const cancel = $("gen-cancel");
  const stage = $("gen-stage");
  const preview = $("gen-preview");
  const badge = $("gen-badge");
  const frames = $("gen-frames");
  const thumbs = $("gen-thumbs");
  const meta = $("gen-meta");
  const errors = new ErrorBox($("gen-error"), form);
  const progress = new Progress($("gen-progress"));
  let controller = null;
  let urls = [];

  submitOnCtrlEnter(fields.prompt, form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!controller) run();
  });
  cancel.addEventListener("click", () => controller?.abort());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && controller && app.activeTab() === "generate") controller.abort();
  });

  function requestBody() {
    const body = {
      prompt: value(fields.prompt),
      model: fields.model.value,
      size: value(fields.size) ?? "auto",
      quality: fields.quality.value,
      output_format: fields.format.value,
      n: numberValue(fields.n) ?? 1,
      stream: true,
      partial_images: Number(fields.partials.value),
    };
    const optional = {
      seed: numberValue(fields.seed),
      negative_prompt: value(fields.negative),
      steps: numberValue(fields.steps),
      guidance_scale: numberValue(fields.guidance),
      output_compression: numberValue(fields.compression),
    };
    for (const [key, v] of Object.entries(optional)) if (v !== undefined) body[key] = v;
    return body;
  }

  function reset() {
    urls.forEach((url) => URL.revokeObjectURL(url));
    urls = [];
    frames.replaceChildren();
    thumbs.replaceChildren();
    meta.hidden = true;
    meta.replaceChildren();
    preview.hidden = true;
    badge.hidden = true;
    stage.classList.add("empty");
    delete stage.dataset.state;
  }

  function show(url, state, label) {
    preview.src = url;
    preview.hidden = false;
    preview.alt = state === "final" ? "Generated image" : "Preview while generating";
    stage.classList.remove("empty");
    stage.dataset.state = state;
    badge.textContent = label;
    badge.hidden = false;
  }

  function keep(blob) {
    const url = URL.createObjectURL(blob);
    urls.push(url);
    return url;
  }

  async function run() {
    errors.clear();
    const body = requestBody();
    if (!body.prompt) {
      errors.show({ message: "Write a prompt first: what should the image show?", param: "prompt" });
      return;
    }
    controller = new AbortController();
    submit.disabled = true;
    submit.textContent = "Generating\u2026";
    cancel.hidden = false;
    reset();
    progress.start("Sending the request");
    const steps = body.n * (body.partial_images + 1);
    const mime = MIME[body.output_format];
    const results = [];
    let partials = 0;
    try {
      const response = await postJSON("/v1/images/generations", body, controller.signal);
      const cost = costOf(response);
      progress.set("Drawing", 0.02);
      for await (const event of events(response)) {
        if (event.type === "image_generation.partial_image") {
          partials += 1;
          const url = keep(b64ToBlob(event.b64_json, mime));
          show(url, "partial", `Preview ${partials}`);
          frames.append(el("figure", { class: "partial-frame", dataset: { index: event.partial_image_index } },
            el("img", { src: url, alt: `Preview ${partials}` }), el("figcaption", {}, `${partials}`)));
          progress.set(`Preview ${partials} of ${body.n * body.partial_images}`, (partials + results.length) / steps);
        } else if (event.type === "image_generation.completed") {
          const blob = b64ToBlob(event.b64_json, mime);
          results.push({ ...event, blob, url: keep(blob) });
          progress.set(`Image ${results.length} of ${body.n} done`, (partials + results.length) / steps);
        }
      }
      if (!results.length) throw new Error("The server closed the stream before sending an image.");
      const seconds = progress.elapsed();
      results.forEach((result, i) => {
        thumbs.append(el("button", {
          type: "button", "aria-pressed": i === 0 ? "true" : "false", title: `Seed ${result.seed}`,
          onclick: (e) => select(results, i, e.currentTarget, body, seconds, cost),
        }, el("img", { src: result.url, alt: `Image ${i + 1}` })));
      });
      thumbs.hidden = results.length < 2;
      select(results, 0, thumbs.firstElementChild, body, seconds, cost);
    } catch (err) {
      if (err.name === "AbortError") {
        errors.show({ message: "Cancelled: the server stops the job between two denoising steps." }, "Cancelled");
      } else {
        errors.show(err, "The image could not be made");
      }
    } finally {
      controller = null;
      submit.disabled = false;
      submit.textContent = "Generate";
      cancel.hidden = true;
      progress.stop();
      app.changed();
    }
  }

  function select(results, index, button, body, seconds, cost) {
    const result = results[index];
    thumbs.querySelectorAll("button").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    show(result.url, "final", results.length > 1 ? `Image ${index + 1} of ${results.length}` : "Final");
    preview.dataset.seed = result.seed;
    const tokens = result.usage?.total_tokens;
    meta.replaceChildren(
      metaList([
        ["Seed", result.seed],
        ["Size", result.size],
        ["Quality", result.quality],
        ["Format", result.output_format],
        ["Model", body.model],
        ["Time", formatSeconds(seconds)],
        ["Cost", `${formatCost(cost)}${cost !== null && results.length > 1 ? " (request)" : ""}`],
        ["Tokens", tokens],
      ]),
      el("div", { class: "buttons" },
        downloadLink(result.url, `gouache-${result.seed}.${result.output_format}`),
        el("button", { type: "button", class: "ghost small", onclick: () => {
          fields.seed.value = result.seed;
          fields.seed.focus();
        } }, "Reuse seed"),
        el("button", { type: "button", class: "ghost small", onclick: () => app.editImage(result.blob,
          `gouache-${result.seed}.${result.output_format}`) }, "Edit this image")),
    );
    meta.hidden = false;
  }

  /** Fill the form from a history entry's recorded parameters. */
  function fill(params) {
    fields.prompt.value = params.prompt ?? "";
    const set = (input, v) => { if (v !== undefined && v !== null) input.value = v; };
    if (params.model && [...fields.model.options].some((o) => o.value === params.model)) {
      fields.model.value = params.model;
    }
    set(fields.size, params.size);
    set(fields.quality, params.quality);
    set(fields.format, params.output_format);
    set(fields.n, params.n);
    fields.seed.value = params.seed ?? "";
    fields.negative.value = params.negative_prompt ?? "";
    fields.steps.value = params.steps ?? "";
    fields.guidance.value = params.guidance_scale ?? "";
    fields.prompt.focus();
  }

  function setModels(models, preferred) {
    const ids = models.map((m) => m.id);
    fields.model.replaceChildren(...models.map((m) =>
      el("option", { value: m.id }, m.root && m.root !== m.id ? `${m.id} \u2192 ${m.root}` : m.id)));
    fields.model.value = ids.includes(preferred) ? preferred : ids[0];
  }

  return { fill, setModels };
}
