// The one way the console talks to the platform: the public API through the gateway, with the session
// cookie, and the CSRF token of GET /get_csrf_token on every write. Errors come back as ApiError with
// the message of the route's own envelope (003 message, 001 response, 002 err_msg, 004 error/details,
// 000 err_desc), so a page can show it in plain words.
import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(message, { status = 0, code = null, body = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

let csrfToken = null;

async function csrf() {
  if (!csrfToken) {
    const response = await fetch("/get_csrf_token", { credentials: "same-origin" });
    csrfToken = (await response.json()).data.csrf_token;
  }
  return csrfToken;
}

// The error an envelope carries, or null when the answer is a success.
export function envelopeError(body, status) {
  if (body && typeof body === "object" && !Array.isArray(body)) {
    if ("code" in body && body.code !== 0 && body.code !== "0") {
      return { code: body.code, message: body.message || body.msg || `code ${body.code}` };
    }
    if ("err_code" in body && body.err_code !== 0) {
      return { code: body.err_code, message: body.err_msg || `err_code ${body.err_code}` };
    }
    if ("err_no" in body && body.err_no !== 0 && body.err_no !== "0") {
      return { code: body.err_no, message: body.err_desc || `err_no ${body.err_no}` };
    }
    if ("error" in body && status >= 400) {
      return { code: status, message: body.details ? `${body.error}: ${body.details}` : String(body.error) };
    }
    if ("response" in body && status >= 400) {
      return { code: status, message: String(body.response) };
    }
  }
  if (status >= 400) return { code: status, message: status === 503 ? t("error.unavailable") : t("error.http", { status }) };
  return null;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== null) params.set(key, value);
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function readBody(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) return response.json();
  return response.text();
}

// api("POST", "/task/", { json: {...} }) -> the parsed body (the whole envelope).
export async function api(method, path, { json, form, query, headers = {}, raw = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { ...headers } };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRFToken"] = await csrf();
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(withQuery(path, query), init);
  } catch (error) {
    throw new ApiError(t("error.network"), { status: 0 });
  }
  const isJson = (response.headers.get("content-type") || "").includes("json");
  if (raw && response.ok && !isJson) return response;
  const body = await readBody(response).catch(() => null);
  const failure = envelopeError(body, response.status);
  if (failure) throw new ApiError(failure.message, { status: response.status, code: failure.code, body });
  return body;
}

// The `data` of a 003 answer.
export async function data(method, path, options) {
  return (await api(method, path, options)).data;
}

// A multipart upload with progress (fetch cannot report upload progress; XMLHttpRequest can).
export async function upload(path, form, onProgress, { query } = {}) {
  const token = await csrf();
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", withQuery(path, query));
    request.withCredentials = true;
    request.setRequestHeader("X-CSRFToken", token);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    };
    request.onerror = () => reject(new ApiError(t("error.uploadnetwork")));
    request.onload = () => {
      let body = request.responseText;
      try { body = JSON.parse(body); } catch { /* not JSON */ }
      const failure = envelopeError(body, request.status);
      if (failure) reject(new ApiError(failure.message, { status: request.status, code: failure.code, body }));
      else resolve({ body, headers: (name) => request.getResponseHeader(name) });
    };
    request.send(form);
  });
}

// Downloads an API answer as a file (exports, result CSVs) without leaving the page.
export async function download(path, query, fallbackName) {
  const response = await api("GET", path, { query, raw: true });
  const disposition = response.headers.get("content-disposition") || "";
  const name = (disposition.match(/filename="?([^";]+)"?/) || [])[1] || fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function forgetCsrf() {
  csrfToken = null;
}
