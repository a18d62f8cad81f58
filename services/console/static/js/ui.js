// Small DOM helpers every page uses: element creation, messages, forms, formatting.
import { lang, t } from "./i18n.js";

// h("button", { class: "btn", onclick }, "text", child, ...) -> an element. Falsy children are skipped.
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(element.style, value);
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

export function svg(tag, attrs = {}) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) element.setAttribute(key, value);
  return element;
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

// An inline error under a form: the API's own message, in plain words.
export function errorText(error) {
  return error && error.message ? error.message : String(error);
}

export function alertBox(message, kind = "error") {
  return h("div", { class: `alert alert-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
}

let fieldCounter = 0;

// A labelled control with an optional explanation underneath.
export function field(label, control, help) {
  const id = control.id || `f${++fieldCounter}`;
  control.id = id;
  const helpId = help ? `${id}-help` : null;
  if (helpId) control.setAttribute("aria-describedby", helpId);
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    control,
    help && h("p", { class: "help", id: helpId }, help));
}

export function input(attrs = {}) {
  return h("input", { class: "input", ...attrs });
}

export function button(label, attrs = {}) {
  return h("button", { type: "button", class: "btn", ...attrs }, label);
}

// Runs `work` with the button disabled and a busy state; shows the API's error in `errorSlot`.
export async function busy(buttonElement, work, errorSlot) {
  buttonElement.disabled = true;
  buttonElement.setAttribute("aria-busy", "true");
  if (errorSlot) errorSlot.replaceChildren();
  try {
    return await work();
  } catch (error) {
    if (errorSlot) errorSlot.replaceChildren(alertBox(errorText(error)));
    else toast(errorText(error), "error");
    return undefined;
  } finally {
    buttonElement.disabled = false;
    buttonElement.removeAttribute("aria-busy");
  }
}

export function pageHeader(title, subtitle, ...actions) {
  return h("div", { class: "page-header" },
    h("div", {}, h("h1", {}, title), subtitle && h("p", { class: "muted" }, subtitle)),
    actions.length ? h("div", { class: "actions" }, actions) : null);
}

export function card(...children) {
  return h("section", { class: "card" }, children);
}

export function stat(label, value, hint) {
  return h("div", { class: "stat" }, h("div", { class: "stat-label" }, label),
    h("div", { class: "stat-value" }, value), hint && h("div", { class: "stat-hint" }, hint));
}

export function badge(text, kind = "neutral") {
  return h("span", { class: `badge badge-${kind}` }, text);
}

export function empty(message) {
  return h("div", { class: "empty" }, message);
}

export function progressBar(fraction, label) {
  const percent = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
  return h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
    "aria-valuenow": String(percent), "aria-label": label || t("common.progress") },
  h("div", { class: "progress-bar", style: { width: `${percent}%` } }));
}

export function formatTime(seconds) {
  if (!seconds || seconds < 0) return "-";
  return new Date(seconds * 1000).toLocaleString(lang() === "zh" ? "zh-CN" : "en-GB");
}

export function formatDuration(seconds) {
  seconds = Math.max(0, Math.round(seconds));
  const h_ = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h_ ? `${h_}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}` : `${m}:${String(s).padStart(2, "0")}`;
}

export function table(headers, rows) {
  return h("div", { class: "table-wrap" }, h("table", { class: "table" },
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows)));
}

// Reads a File as base64 (without the data: prefix), for the JSON bodies of 002 and 003's face login.
export function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// A drop zone that also opens the file picker (click, Enter or Space): calls onFiles(File[]).
export function dropZone(label, onFiles, { accept = "image/*", multiple = true } = {}) {
  const picker = h("input", { type: "file", accept, multiple, class: "visually-hidden", tabindex: "-1",
    onchange: () => { if (picker.files.length) onFiles([...picker.files]); picker.value = ""; } });
  const zone = h("div", { class: "dropzone", tabindex: "0", role: "button", "aria-label": label,
    onclick: () => picker.click(),
    onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); picker.click(); } },
    ondragover: (event) => { event.preventDefault(); zone.classList.add("over"); },
    ondragleave: () => zone.classList.remove("over"),
    ondrop: (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = [...event.dataTransfer.files];
      if (files.length) onFiles(multiple ? files : files.slice(0, 1));
    } },
  h("div", { class: "dropzone-icon", "aria-hidden": "true" }, "⇪"), h("div", {}, label), picker);
  zone.picker = picker;
  return zone;
}
