// Profile: points, level, credit, VIP, bank card, invite code; recharge and VIP.
import { api } from "../api.js";
import { t } from "../i18n.js";
import { profile } from "../session.js";
import { badge, busy, card, clear, field, formatTime, h, input, pageHeader, stat, toast } from "../ui.js";

function idempotencyKey() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
}

export default {
  title: "profile.title",
  async render(root) {
    const body = h("div", { class: "stack" });
    root.append(pageHeader(t("profile.title"), t("profile.subtitle")), body);

    async function refresh() {
      const me = await profile();
      const vip = me.vip_expire_time && me.vip_expire_time * 1000 > Date.now();
      clear(body,
        h("div", { class: "stats" },
          stat(t("profile.points"), h("span", { id: "profile-points" }, String(me.score))),
          stat(t("profile.level"), t(`level.${me.membership_level}`), vip ? t("profile.vipuntil", { date: formatTime(me.vip_expire_time) }) : t("profile.novip")),
          stat(t("profile.credit"), String(me.credit_score)),
          stat(t("profile.tagscore"), String(me.tag_score ?? 0))),
        h("div", { class: "grid-2" },
          card(h("h2", {}, t("profile.account")),
            h("dl", { class: "facts" },
              h("dt", {}, t("login.username")), h("dd", {}, me.user_name),
              h("dt", {}, t("register.role")), h("dd", {}, t(`role.${me.user_type}`)),
              h("dt", {}, t("register.email")), h("dd", {}, me.email || "-"),
              h("dt", {}, t("profile.checked")), h("dd", {}, me.is_checked ? badge(t("common.yes"), "success") : badge(t("profile.notchecked"), "warning")),
              h("dt", {}, t("profile.invite")), h("dd", {}, h("code", { id: "invite-code" }, me.invite_code || "-"), " ",
                h("button", { type: "button", class: "btn btn-sm btn-ghost", onclick: (event) => busy(event.currentTarget, async () => {
                  await api("POST", "/user/reset_invite_code"); await refresh();
                }) }, t("profile.resetinvite"))))),
          walletCard(me, refresh)));
    }
    await refresh();
  },
};

function walletCard(me, refresh) {
  const card_ = input({ name: "bank_account", value: me.bank_account || "", inputmode: "numeric" });
  const amount = input({ name: "amount", type: "number", min: "1", value: "10" });
  const errors = h("div", { class: "form-errors" });
  const bind = h("button", { type: "button", class: "btn" }, t("profile.bind"));
  bind.addEventListener("click", () => busy(bind, async () => {
    await api("POST", "/user/modifybankaccount", { json: { bank_account: card_.value.trim() } });
    toast(t("common.saved"), "success");
    await refresh();
  }, errors));
  const recharge = h("button", { type: "button", class: "btn btn-primary", id: "recharge" }, t("profile.recharge"));
  recharge.addEventListener("click", () => busy(recharge, async () => {
    await api("POST", "/user/recharge", { json: { amount: Number(amount.value) }, headers: { "Idempotency-Key": idempotencyKey() } });
    toast(t("profile.recharged"), "success");
    await refresh();
  }, errors));
  const vip = h("select", { class: "input" }, ["month", "season", "year"].map((p) => h("option", { value: p }, t(`profile.vip.${p}`))));
  const buyVip = h("button", { type: "button", class: "btn" }, t("profile.buyvip"));
  buyVip.addEventListener("click", () => busy(buyVip, async () => {
    await api("POST", "/user/getvip", { json: { package_type: vip.value }, headers: { "Idempotency-Key": idempotencyKey() } });
    toast(t("common.saved"), "success");
    await refresh();
  }, errors));
  return card(h("h2", {}, t("profile.wallet")),
    h("p", { class: "muted" }, t("profile.balance", { n: me.account_balance ?? 0 })),
    field(t("profile.card"), h("div", { class: "inline" }, card_, bind), t("profile.cardhelp")),
    field(t("profile.amount"), h("div", { class: "inline" }, amount, recharge), t("profile.amounthelp")),
    field(t("profile.vip"), h("div", { class: "inline" }, vip, buyVip)),
    errors);
}
