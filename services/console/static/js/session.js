// Who is signed in. The session itself is the gateway's cookie; the console remembers the user's id,
// name and role from the login answer (003's login answers them; 001's get-current confirms the
// cookie is still good on every start).
import { api, data, forgetCsrf } from "./api.js";

const STORAGE_KEY = "labelhive.user";
let user = null;

export function currentUser() {
  return user;
}

export async function restore() {
  const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
  if (!saved) return null;
  try {
    const probe = await api("GET", "/user/get-current");
    user = probe.username === saved.user_name ? saved : null;
  } catch {
    user = null;
  }
  if (!user) localStorage.removeItem(STORAGE_KEY);
  return user;
}

export async function signIn(userName, password) {
  const answer = await data("POST", "/user/login", { json: { user_name: userName, password } });
  user = { user_id: answer.user_id, user_name: answer.user_name, user_type: answer.user_type };
  localStorage.setItem(STORAGE_KEY, JSON.stringify(user));
  forgetCsrf();
  return user;
}

export async function signOut() {
  try {
    await api("POST", "/user/logout");
  } finally {
    user = null;
    localStorage.removeItem(STORAGE_KEY);
    forgetCsrf();
  }
}

export async function profile() {
  return data("GET", `/user/userinfo/${user.user_id}`);
}
