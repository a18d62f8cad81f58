// Routes and navigation, shared by the shell (app.js) and the pages: hash paths to page modules (one
// file per page in pages/), and what each role finds in the navigation.
import { currentUser } from "./session.js";

// path pattern -> page module (in pages/). Public pages need no session.
export const ROUTES = [
  ["/login", "login", { public: true }],
  ["/register", "register", { public: true }],
  ["/profile", "profile"],
  ["/tasks", "tasks"],
  ["/work/:taskId", "workspace"],
  ["/missions", "missions"],
  ["/requester", "requester"],
  ["/agent", "agent"],
  ["/publish", "publish"],
  ["/review/:taskId", "review"],
  ["/datasets", "datasets"],
  ["/admin", "admin"],
  ["/keys", "apikeys"],
  ["/face", "face"],
  ["/defect", "defect"],
  ["/dashboard", "dashboard"],
];

// What each role finds in the navigation; the first entry is its home page.
export const NAV = {
  tag: ["/tasks", "/missions", "/profile"],
  demand: ["/requester", "/publish", "/datasets", "/face", "/defect", "/dashboard", "/profile"],
  admin: ["/admin", "/keys", "/face", "/defect", "/dashboard", "/profile"],
  agent: ["/agent", "/profile"],
};

export const NAV_LABELS = {
  "/tasks": "nav.tasks", "/missions": "nav.missions", "/profile": "nav.profile", "/requester": "nav.requester",
  "/publish": "nav.publish", "/datasets": "nav.datasets", "/face": "nav.face", "/defect": "nav.defect",
  "/dashboard": "nav.dashboard", "/admin": "nav.admin", "/keys": "nav.keys", "/agent": "nav.agent",
};

export function match(path) {
  for (const [pattern, module, options = {}] of ROUTES) {
    const names = [];
    const source = pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return "([^/]+)"; });
    const found = path.match(new RegExp(`^${source}$`));
    if (found) {
      const params = Object.fromEntries(names.map((name, i) => [name, decodeURIComponent(found[i + 1])]));
      return { module, options, params };
    }
  }
  return null;
}

export function home() {
  const user = currentUser();
  return user ? (NAV[user.user_type] || ["/profile"])[0] : "/login";
}

export function go(path) {
  if (location.hash === `#${path}`) window.dispatchEvent(new Event("hashchange"));
  else location.hash = path;
}
