// The console's shell: renders the page module of the current hash route (loaded on first use), the
// navigation by role, the language switch and sign-out. Routes are in router.js.
import { onLangChange, lang, setLang, t } from "./i18n.js";
import { currentUser, restore, signOut } from "./session.js";
import { NAV, NAV_LABELS, go, home, match } from "./router.js";
import { clear, errorText, h, toast } from "./ui.js";

const VERSION = document.body.dataset.version;

const main = document.getElementById("main");
let cleanup = null;
let rendering = 0;

function renderNav(activePath) {
  const user = currentUser();
  document.querySelector(".skip").textContent = t("nav.skip");
  const nav = document.getElementById("nav");
  clear(nav, user && h("ul", {}, (NAV[user.user_type] || []).map((path) =>
    h("li", {}, h("a", { href: `#${path}`, "aria-current": activePath.startsWith(path) ? "page" : null },
      t(NAV_LABELS[path]))))));
  const end = document.getElementById("topbar-end");
  const switcher = h("button", { type: "button", class: "btn btn-ghost btn-sm", id: "lang-switch",
    "aria-label": t("nav.language"), onclick: () => setLang(lang() === "zh" ? "en" : "zh") },
  lang() === "zh" ? "EN" : "中文");
  clear(end, switcher, user && h("span", { class: "who" }, h("span", { class: "who-name" }, user.user_name),
    h("span", { class: "badge badge-neutral" }, t(`role.${user.user_type}`))),
  user && h("button", { type: "button", class: "btn btn-ghost btn-sm", id: "sign-out",
    onclick: async () => { await signOut().catch(() => {}); go("/login"); } }, t("nav.signout")));
}

async function render() {
  const ticket = ++rendering;
  const path = location.hash.replace(/^#/, "") || "/";
  if (path === "/") return go(home());
  const found = match(path);
  if (!found) return go(home());
  if (!found.options.public && !currentUser()) return go("/login");
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  renderNav(path);
  let page;
  try {
    page = (await import(`./pages/${found.module}.js?v=${VERSION}`)).default;
  } catch (error) {
    clear(main, h("div", { class: "alert alert-error" }, errorText(error)));
    return;
  }
  if (ticket !== rendering) return;
  document.title = `${t(page.title)} · Labelhive`;
  const root = h("div", { class: `page page-${found.module}` });
  clear(main, root);
  try {
    cleanup = (await page.render(root, found.params)) || null;
  } catch (error) {
    root.append(h("div", { class: "alert alert-error", role: "alert" }, errorText(error)));
  }
  if (ticket === rendering) {
    main.focus({ preventScroll: true });
    window.dispatchEvent(new CustomEvent("labelhive:rendered", { detail: { path } }));
  }
}

window.addEventListener("hashchange", render);
onLangChange(render);
window.addEventListener("unhandledrejection", (event) => toast(errorText(event.reason), "error"));

restore().finally(render);
