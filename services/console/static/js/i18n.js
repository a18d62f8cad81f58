// Chinese and English: chosen by navigator.language (zh* -> Chinese), switchable, remembered. One
// dictionary file per language (i18n/zh.js, i18n/en.js); a key missing in one falls back to the other.
import en from "./i18n/en.js";
import zh from "./i18n/zh.js";

const DICTIONARIES = { zh, en };
const STORAGE_KEY = "labelhive.lang";
const listeners = new Set();

function initial() {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved in DICTIONARIES) return saved;
  return (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
}

let current = initial();
document.documentElement.lang = current === "zh" ? "zh-CN" : "en";

export function lang() {
  return current;
}

export function setLang(value) {
  if (!(value in DICTIONARIES) || value === current) return;
  current = value;
  localStorage.setItem(STORAGE_KEY, value);
  document.documentElement.lang = value === "zh" ? "zh-CN" : "en";
  for (const listener of listeners) listener(value);
}

export function onLangChange(listener) {
  listeners.add(listener);
}

// t("tasks.reward", { n: 5 }) -> "每题 5 积分"
export function t(key, vars = {}) {
  const text = DICTIONARIES[current][key] ?? DICTIONARIES.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}
