// Registration: 003's account with a code mailed to the address, or 001's expert sign-up.
import { api } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, busy, field, h, input } from "../ui.js";

function roleSelect() {
  return h("select", { class: "input", name: "user_type" },
    ["tag", "demand", "agent"].map((role) => h("option", { value: role }, t(`role.${role}`))));
}

function crowdForm() {
  const email = input({ type: "email", name: "email", autocomplete: "email", required: true });
  const code = input({ name: "verifycode", inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const name = input({ name: "user_name", autocomplete: "username", required: true, minlength: 4, maxlength: 24 });
  const password = input({ name: "password", type: "password", autocomplete: "new-password", required: true,
    minlength: 6, maxlength: 20 });
  const role = roleSelect();
  const invite = input({ name: "invite_code" });
  const errors = h("div", { class: "form-errors" });
  const sendCode = h("button", { type: "button", class: "btn", id: "send-code" }, t("register.sendcode"));
  sendCode.addEventListener("click", () => busy(sendCode, async () => {
    await api("POST", "/user/get_verifycode", { json: { email: email.value.trim() } });
    errors.replaceChildren(alertBox(t("register.codesent", { email: email.value.trim() }), "info"));
    code.focus();
  }, errors));
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-block" }, t("register.submit"));
  return h("form", { class: "auth-form", onsubmit: (event) => {
    event.preventDefault();
    busy(submit, async () => {
      await api("POST", "/user/register", { json: {
        user_name: name.value.trim(), password: password.value, user_type: role.value, email: email.value.trim(),
        verifycode: code.value.trim(), invite_code: invite.value.trim() || null } });
      errors.replaceChildren(alertBox(t("register.done"), "success"));
      setTimeout(() => { location.hash = "/login"; }, 1200);
    }, errors);
  } },
  field(t("register.email"), h("div", { class: "inline" }, email, sendCode)),
  field(t("register.code"), code, t("register.codehelp")),
  field(t("login.username"), name, t("register.namehelp")),
  field(t("login.password"), password, t("register.passwordhelp")),
  field(t("register.role"), role),
  field(t("register.invite"), invite, t("register.invitehelp")),
  errors, submit);
}

function expertForm() {
  const name = input({ name: "username", required: true });
  const password = input({ name: "password", type: "password", autocomplete: "new-password", required: true });
  const area = input({ name: "user_area", placeholder: t("register.areaexample") });
  const errors = h("div", { class: "form-errors" });
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-block" }, t("register.submit"));
  return h("form", { class: "auth-form", onsubmit: (event) => {
    event.preventDefault();
    busy(submit, async () => {
      const answer = await api("POST", "/user/register", { json: {
        username: name.value.trim(), password: password.value, user_area: area.value.trim() } });
      errors.replaceChildren(alertBox(answer.response, "success"));
    }, errors);
  } },
  field(t("login.username"), name), field(t("login.password"), password),
  field(t("register.area"), area, t("register.areahelp")), errors, submit);
}

export default {
  title: "register.title",
  render(root) {
    const body = h("div", {});
    const tabs = h("div", { class: "tabs", role: "tablist" });
    const show = (which) => {
      for (const tab of tabs.children) tab.setAttribute("aria-selected", String(tab.dataset.tab === which));
      body.replaceChildren(which === "crowd" ? crowdForm() : expertForm());
    };
    tabs.append(
      h("button", { type: "button", role: "tab", class: "tab", dataset: { tab: "crowd" }, onclick: () => show("crowd") },
        t("register.crowd")),
      h("button", { type: "button", role: "tab", class: "tab", dataset: { tab: "expert" }, onclick: () => show("expert") },
        t("register.expert")));
    root.append(h("div", { class: "auth" }, h("div", { class: "card auth-card wide" },
      h("h2", {}, t("register.title")), tabs, body,
      h("p", { class: "muted center" }, t("register.haveaccount"), " ", h("a", { href: "#/login" }, t("login.submit"))))));
    show("crowd");
  },
};
