// The public Gouache/OpenAI API, from the same origin: JSON, multipart and server-sent events.
// The API key (optional) lives in localStorage and goes out as `Authorization: Bearer <key>`.

const KEY_STORAGE = "gouache.apiKey";
export const COST_HEADER = "x-gouache-cost-usd";

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(value) {
  const key = value.trim();
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function withAuth(headers = {}) {
  const key = apiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : { ...headers };
}

/** An error answer of the API, with a message in plain words and OpenAI's `param` and `code`. */
export class ApiError extends Error {
  constructor(status, error) {
    super(plainMessage(status, error));
    this.name = "ApiError";
    this.status = status;
    this.param = error?.param ?? null;
    this.code = error?.code ?? null;
    this.detail = error?.message ?? "";
  }
}

/** What to tell a person about an HTTP status and OpenAI-shaped `error` object. */
export function plainMessage(status, error) {
  const detail = (error && error.message) || "";
  switch (true) {
    case status === 0:
      return "Cannot reach the Gouache server. Check that it is running, then try again.";
    case status === 401:
      return "The server needs a valid API key. Enter your key in the \u201cAPI key\u201d field at the top of the page"
        + (apiKey() ? " (the one saved there was refused)." : ".");
    case status === 403:
      return `This API key may not do that. ${detail}`.trim();
    case status === 413:
      return "The upload is too large for the server.";
    case status === 429:
      return `Slow down: ${detail || "too many requests or over budget."} Try again shortly.`;
    case status === 503:
      return `The server is busy right now. ${detail} Try again in a moment.`.replace(/\s+/g, " ");
    case status >= 500:
      return `The server had an error: ${detail || "no details given."}`;
    default:
      return detail || `The request failed (HTTP ${status}).`;
  }
}

async function send(path, init = {}) {
  let response;
  try {
    response = await fetch(path, { ...init, headers: withAuth(init.headers) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, null);
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    throw new ApiError(response.status, body?.error ?? { message: body?.detail ?? "" });
  }
  return response;
}

export async function getJSON(path, signal) {
  const response = await send(path, { signal });
  return response.json();
}

/** A file behind a URL of this server (image links), fetched with the API key like every other call. */
export async function getBlob(url, signal) {
  const response = await send(url, { signal });
  return response.blob();
}

export async function deleteJSON(path) {
  const response = await send(path, { method: "DELETE" });
  return response.json();
}

/** POST a JSON body; resolves to the Response (for streams, its body is read with `events`). */
export function postJSON(path, body, signal) {
  return send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

export function postForm(path, form, signal) {
  return send(path, { method: "POST", body: form, signal });
}

/** The hosted-equivalent cost in dollars from a response header, or null when the server sends none. */
export function costOf(response) {
  const raw = response.headers.get(COST_HEADER);
  if (raw === null || raw === "") return null;
  const value = Number(raw);
  return Number.isFinite(value) ? value : null;
}

/** The JSON events of a `text/event-stream` response, in order. An `error` event becomes an ApiError. */
export async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let cut;
    while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
      const data = frame
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data || data === "[DONE]") continue;
      const event = JSON.parse(data);
      if (event.type === "error") {
        const error = event.error ?? { message: event.message, code: event.code, param: event.param };
        throw new ApiError(error.code === "server_error" ? 500 : 400, error);
      }
      yield event;
    }
    if (done) return;
  }
}
