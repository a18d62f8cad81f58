// Sign in with 003's password login.
import { go, home } from "../router.js";
import { t } from "../i18n.js";
import { signIn } from "../session.js";
import { busy, field, h, input } from "../ui.js";

export default {
  title: "login.title",
  render(root) {
    const name = input({ name: "user_name", autocomplete: "username", required: true });
    const password = input({ name: "password", type: "password", autocomplete: "current-password", required: true });
    const errors = h("div", { class: "form-errors" });
    const submit = h("button", { type: "submit", class: "btn btn-primary btn-block", id: "login-submit" }, t("login.submit"));
    const form = h("form", { class: "auth-form", onsubmit: (event) => {
      event.preventDefault();
      busy(submit, async () => {
        await signIn(name.value.trim(), password.value);
        go(home());
      }, errors);
    } },
    field(t("login.username"), name),
    field(t("login.password"), password),
    errors, submit,
    h("p", { class: "muted center" }, t("login.noaccount"), " ", h("a", { href: "#/register" }, t("login.register"))));
    root.append(h("div", { class: "auth" },
      h("div", { class: "auth-intro" }, h("h1", {}, "Labelhive"), h("p", {}, t("login.tagline")),
        h("ul", { class: "auth-points" }, h("li", {}, t("login.point1")), h("li", {}, t("login.point2")),
          h("li", {}, t("login.point3")))),
      h("div", { class: "card auth-card" }, h("h2", {}, t("login.title")), form)));
    name.focus();
  },
};
