// Refine in conversation: POST /v1/responses with the image_generation tool, each turn continuing the last
// through previous_response_id; every turn shows its image (streamed previews first).

import { costOf, events, postJSON } from "./api.js";
import {
  $, ErrorBox, MIME, Progress, b64ToBlob, downloadLink, el, formatCost, formatSeconds, numberValue, value,
} from "./ui.js";

/** The text model name recorded with each turn (Gouache's turn planner stands in for it). */
const TEXT_MODEL = "gouache-playground";

export function initChat(app) {
  const form = $("chat-form");
  const input = $("chat-input");
  const log = $("chat-log");
  const send = $("chat-send");
  const attach = $("chat-attach");
  const attached = $("chat-attached");
  const options = { size: $("chat-size"), quality: $("chat-quality"), seed: $("chat-seed"), partials: $("chat-partials") };
  const errors = new ErrorBox($("chat-error"), $("panel-chat"));
  const progress = new Progress($("chat-progress"));
  let previous = null;
  let controller = null;
  let attachment = null; // data URL

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!controller) turn();
  });
  attach.addEventListener("change", () => {
    const file = attach.files[0];
    attach.value = "";
    if (!file) return;
    const reader = new FileReader();
    reader.onload = () => {
      attachment = reader.result;
      attached.textContent = `${file.name} attached`;
    };
    reader.readAsDataURL(file);
  });
  $("chat-new").addEventListener("click", () => {
    controller?.abort();
    previous = null;
    log.replaceChildren($("chat-empty") ?? el("li", { class: "chat-empty" }, "New conversation."));
    $("chat-empty").hidden = false;
    errors.clear();
    input.focus();
  });

  function tool() {
    const t = { type: "image_generation", model: app.model(), size: value(options.size) ?? "auto",
      quality: options.quality.value, partial_images: Number(options.partials.value) };
    const seed = numberValue(options.seed);
    if (seed !== undefined) t.seed = seed;
    return t;
  }

  async function turn() {
    errors.clear();
    const text = value(input);
    if (!text) {
      errors.show({ message: "Type what you would like to see, or how to change the last image." });
      input.focus();
      return;
    }
    const body = { model: TEXT_MODEL, tools: [tool()], stream: true };
    body.input = attachment
      ? [{ role: "user", content: [{ type: "input_text", text }, { type: "input_image", image_url: attachment }] }]
      : text;
    if (previous) body.previous_response_id = previous;
    $("chat-empty").hidden = true;
    const user = el("li", { class: "turn user" }, el("div", { class: "bubble" }, text,
      attachment ? el("img", { src: attachment, alt: "Attached image" }) : null));
    const image = el("img", { class: "turn-image", alt: "Image of this turn", hidden: true });
    const reply = el("p", { class: "reply" }, "Drawing\u2026");
    const meta = el("div", { class: "meta" });
    const assistant = el("li", { class: "turn assistant pending" }, el("div", { class: "bubble" }, reply, image, meta));
    log.append(user, assistant);
    assistant.scrollIntoView({ block: "end", behavior: "smooth" });
    input.value = "";
    attachment = null;
    attached.textContent = "";

    controller = new AbortController();
    send.disabled = true;
    progress.start("Thinking");
    const format = "png";
    let partials = 0;
    try {
      const response = await postJSON("/v1/responses", body, controller.signal);
      const cost = costOf(response);
      let done = null;
      for await (const event of events(response)) {
        if (event.type === "response.created") {
          assistant.dataset.responseId = event.response.id;
        } else if (event.type === "response.image_generation_call.partial_image") {
          partials += 1;
          image.src = URL.createObjectURL(b64ToBlob(event.partial_image_b64, MIME[event.output_format] ?? MIME[format]));
          image.hidden = false;
          assistant.dataset.partials = String(partials);
          progress.set(`Preview ${partials}`, partials / (body.tools[0].partial_images + 1));
        } else if (event.type === "response.completed") {
          done = event.response;
        } else if (event.type === "response.failed") {
          throw Object.assign(new Error(event.response.error?.message ?? "The turn failed."), event.response.error ?? {});
        }
      }
      if (!done) throw new Error("The server closed the stream before the turn was complete.");
      const call = done.output.find((item) => item.type === "image_generation_call");
      const message = done.output.find((item) => item.type === "message");
      const blob = b64ToBlob(call.result, MIME[call.output_format] ?? MIME[format]);
      const url = URL.createObjectURL(blob);
      image.src = url;
      image.hidden = false;
      image.alt = call.revised_prompt ?? "Image of this turn";
      reply.textContent = message?.content?.[0]?.text ?? "";
      assistant.classList.remove("pending");
      Object.assign(assistant.dataset, { responseId: done.id, action: call.action, seed: call.seed ?? "" });
      meta.replaceChildren(
        el("span", { class: "action" }, call.action === "edit" ? "edited the last image" : "new image"),
        el("span", {}, `seed ${call.seed}`),
        el("span", {}, formatSeconds(progress.elapsed())),
        el("span", {}, formatCost(cost)),
        downloadLink(url, `gouache-turn-${done.id.slice(-8)}.${call.output_format}`),
        el("button", { type: "button", class: "ghost small", onclick: () => app.editImage(blob, "turn.png") }, "Edit with mask"),
      );
      meta.after(el("p", { class: "hint revised" }, `Prompt: ${call.revised_prompt}`));
      previous = done.id;
    } catch (err) {
      assistant.classList.remove("pending");
      assistant.classList.add("failed");
      if (err.name === "AbortError") {
        reply.textContent = "Stopped.";
      } else {
        reply.textContent = err.message;
        errors.show(err, "This turn did not work");
      }
    } finally {
      controller = null;
      send.disabled = false;
      progress.stop();
      input.focus();
      app.changed();
    }
  }

  return {};
}
