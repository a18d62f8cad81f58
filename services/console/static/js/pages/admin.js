// Admin: check and ban users, check tasks, settle reports, see the ads that are live.
import { api, data } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, badge, busy, card, clear, empty, errorText, h, pageHeader, table } from "../ui.js";

function action(label, work, refresh, kind = "", attrs = {}) {
  const button = h("button", { type: "button", class: `btn btn-sm ${kind}`, ...attrs }, label);
  button.addEventListener("click", () => busy(button, async () => { await work(); await refresh(); }));
  return button;
}

async function usersSection(slot) {
  const refresh = () => usersSection(slot);
  const users = await data("GET", "/user/get_all_users", { query: { type: "all" } });
  users.sort((a, b) => Number(a.is_checked) - Number(b.is_checked) || b.user_id - a.user_id);
  clear(slot, table([t("login.username"), t("register.role"), t("profile.points"), t("profile.credit"), t("admin.status"), ""],
    users.map((user) => h("tr", { dataset: { user: user.user_name } },
      h("td", {}, user.user_name, " ", h("span", { class: "muted small" }, `#${user.user_id}`)),
      h("td", {}, t(`role.${user.user_type}`)), h("td", {}, String(user.score)), h("td", {}, String(user.credit_score)),
      h("td", {}, user.is_banned ? badge(t("admin.banned"), "error") : user.is_checked ? badge(t("admin.checked"), "success") : badge(t("admin.unchecked"), "warning")),
      h("td", { class: "row-actions" },
        !user.is_checked && action(t("admin.check"), () => api("POST", `/user/check_user/${user.user_id}`), refresh, "btn-primary", { dataset: { checkUser: user.user_name } }),
        user.user_type !== "admin" && (user.is_banned
          ? action(t("admin.unban"), () => api("POST", `/user/unban_user/${user.user_id}`), refresh)
          : action(t("admin.ban"), () => confirm(t("admin.banconfirm")) && api("POST", `/user/ban_user/${user.user_id}`), refresh, "btn-danger")))))));
}

async function tasksSection(slot) {
  const refresh = () => tasksSection(slot);
  const tasks = (await data("GET", "/task/get_all_tasks")).filter((task) => task.task_state !== "deleted");
  tasks.sort((a, b) => (a.check_result === "wait" ? 0 : 1) - (b.check_result === "wait" ? 0 : 1) || b.task_id - a.task_id);
  clear(slot, tasks.length ? table([t("publish.name"), t("admin.publisher"), t("tasks.questions"), t("admin.check"), ""],
    tasks.map((task) => h("tr", { dataset: { task: task.task_id } },
      h("td", {}, task.task_name, " ", h("span", { class: "muted small" }, `#${task.task_id}`)),
      h("td", {}, task.publisher?.user_name || "-"), h("td", {}, String(task.q_num)),
      h("td", {}, badge(t(`check.${task.check_result}`), task.check_result === "accept" ? "success" : task.check_result === "refuse" ? "error" : "warning")),
      h("td", { class: "row-actions" }, task.check_result === "wait" && [
        action(t("admin.approve"), () => api("POST", `/task/check_task/${task.task_id}`, { json: { result: "accept" } }), refresh, "btn-primary"),
        action(t("admin.reject"), () => api("POST", `/task/check_task/${task.task_id}`, { json: { result: "refuse" } }), refresh, "btn-danger")])))) : empty(t("admin.notasks")));
}

async function reportsSection(slot) {
  const refresh = () => reportsSection(slot);
  // A report names its reporter by id only: the user list gives the name.
  const [reports, users] = await Promise.all([data("GET", "/review/reportmessage"),
    data("GET", "/user/get_all_users", { query: { type: "all" } })]);
  const names = new Map(users.map((user) => [String(user.user_id), user.user_name]));
  clear(slot, reports.length ? table([t("admin.task"), t("admin.reporter"), t("admin.reportee"), t("review.reason"), t("profile.credit"), ""],
    reports.map((report) => h("tr", { dataset: { reportTask: report.task_id } },
      h("td", {}, report.task_name || "", " ", h("span", { class: "muted small" }, `#${report.task_id}`)),
      h("td", {}, names.get(String(report.reporter_id)) || `#${report.reporter_id}`),
      h("td", {}, String(report.reportee_name || report.reportee_id)), h("td", {}, report.reason), h("td", {}, String(report.credit_score)),
      h("td", { class: "row-actions" },
        action(t("admin.acceptreport"), () => api("POST", `/review/acceptreport/${report.task_id}/${report.reporter_id}`, { query: { reportee_id: report.reportee_id } }), refresh, "btn-danger"),
        action(t("admin.rejectreport"), () => api("POST", `/review/rejectreport/${report.task_id}/${report.reporter_id}`, { query: { reportee_id: report.reportee_id } }), refresh))))) : empty(t("admin.noreports")));
}

async function adsSection(slot) {
  const ads = await data("GET", "/advertise/get_ad", { query: { num: 20 } });
  clear(slot, ads.length ? h("ul", { class: "plain" }, ads.map((url) => h("li", {}, h("code", {}, url)))) : empty(t("admin.noads")));
}

export default {
  title: "nav.admin",
  async render(root) {
    const sections = [["admin.users", usersSection], ["admin.tasks", tasksSection], ["admin.reports", reportsSection], ["admin.ads", adsSection]];
    root.append(pageHeader(t("nav.admin"), t("admin.subtitle")));
    await Promise.all(sections.map(async ([title, fill]) => {
      // Each card says it is loading until its list (or its empty state) is there.
      const slot = h("div", { id: title.replace(".", "-"), "aria-busy": "true" }, h("p", { class: "muted" }, t("common.loading")));
      root.append(card(h("h2", {}, t(title)), slot));
      try { await fill(slot); } catch (error) { clear(slot, alertBox(errorText(error))); }
      slot.removeAttribute("aria-busy");
    }));
  },
};
