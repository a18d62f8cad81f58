// Admin: API keys for the AI services (shown once when created; listed and revoked).
import { api, data } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, busy, card, clear, empty, field, formatTime, h, input, pageHeader, table } from "../ui.js";

export default {
  title: "nav.keys",
  async render(root) {
    const list = h("div", {});
    const name = input({ name: "key_name", required: true, maxlength: 64 });
    const shown = h("div", {});
    const errors = h("div", { class: "form-errors" });
    const create = h("button", { type: "submit", class: "btn btn-primary" }, t("keys.create"));
    async function refresh() {
      const keys = await data("GET", "/user/api_keys");
      clear(list, keys.length ? table([t("keys.name"), t("keys.created"), t("keys.state"), ""], keys.map((key) => h("tr", {},
        h("td", {}, key.name, " ", h("code", { class: "muted small" }, `${key.prefix}…`)), h("td", {}, formatTime(key.created_at)), h("td", {}, key.revoked ? t("keys.revoked") : t("keys.active")),
        h("td", {}, !key.revoked && h("button", { type: "button", class: "btn btn-sm btn-danger", onclick: (event) => busy(event.currentTarget, async () => {
          await api("DELETE", `/user/api_keys/${key.id}`); await refresh(); }) }, t("keys.revoke")))))) : empty(t("keys.none")));
    }
    root.append(pageHeader(t("nav.keys"), t("keys.subtitle")),
      card(h("form", { class: "stack", onsubmit: (event) => {
        event.preventDefault();
        busy(create, async () => {
          const key = await data("POST", "/user/api_keys", { json: { name: name.value.trim() } });
          shown.replaceChildren(alertBox(t("keys.shownonce"), "warning"), h("pre", { class: "secret" }, key.key));
          name.value = "";
          await refresh();
        }, errors);
      } }, field(t("keys.name"), name, t("keys.namehelp")), errors, create, shown)),
      card(h("h2", {}, t("keys.list")), list));
    await refresh();
  },
};
