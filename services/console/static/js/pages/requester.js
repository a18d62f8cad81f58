// Requester: my published tasks with their check state and progress per annotator; distribute,
// redistribute, review, download the results (majority and Dawid-Skene answers), delete.
import { api, data, download } from "../api.js";
import { t } from "../i18n.js";
import { badge, busy, card, clear, empty, h, pageHeader, progressBar, table } from "../ui.js";

const CHECK_KIND = { wait: "warning", accept: "success", refuse: "error" };

function annotatorRows(task) {
  return (task.current_tag_user_list || []).map((entry) => h("tr", {},
    h("td", {}, entry.tag_user.user_name || `#${entry.tag_user.user_id}`),
    h("td", {}, t(`state.${entry.state}`)),
    h("td", {}, h("div", { class: "cell-progress" }, progressBar((entry.answered || 0) / Math.max(1, task.q_num)),
      h("span", {}, `${entry.answered || 0}/${task.q_num}`)))));
}

function taskCard(task, refresh) {
  const actions = [];
  const act = (label, work, kind = "") => {
    const button = h("button", { type: "button", class: `btn ${kind}` }, label);
    button.addEventListener("click", () => busy(button, async () => { await work(); await refresh(); }));
    actions.push(button);
  };
  if (!task.is_distributed && task.task_state !== "deleted") act(t("requester.distribute"), () => data("POST", `/task/distribute/${task.task_id}`), "btn-primary");
  if (task.is_distributed && task.task_state !== "finished") act(t("requester.redistribute"), () => data("POST", `/task/redistribute/${task.task_id}`));
  if (task.is_distributed) actions.push(h("a", { class: "btn btn-primary", href: `#/review/${task.task_id}`, dataset: { review: task.task_id } }, t("requester.review")));
  if (task.is_distributed) {
    const button = h("button", { type: "button", class: "btn" }, t("requester.download"));
    button.addEventListener("click", () => busy(button, () => download(`/review/download/${task.task_id}`, { type: "accepted" }, `task-${task.task_id}.csv`)));
    actions.push(button);
  }
  act(t("requester.delete"), async () => { if (confirm(t("requester.deleteconfirm"))) await api("DELETE", `/task/${task.task_id}`); }, "btn-ghost");
  const annotators = annotatorRows(task);
  return card(
    h("div", { class: "task-head" }, h("h3", {}, task.task_name, " ", h("span", { class: "muted small" }, `#${task.task_id}`)),
      h("div", { class: "badges" }, badge(t(`check.${task.check_result}`), CHECK_KIND[task.check_result] || "neutral"),
        badge(t(`taskstate.${task.task_state}`), "neutral"))),
    h("p", { class: "muted" }, t("requester.summary", { q: task.q_num, reward: task.reward_per_q, people: task.distribute_user_num,
      held: task.reward_per_q * task.q_num * task.distribute_user_num })),
    annotators.length ? table([t("requester.annotator"), t("requester.state"), t("common.progress")], annotators)
      : h("p", { class: "muted" }, task.is_distributed ? t("requester.nobody") : t("requester.notdistributed")),
    h("div", { class: "actions" }, actions));
}

export default {
  title: "nav.requester",
  async render(root) {
    const list = h("div", { class: "cards cards-wide", id: "requester-tasks" });
    root.append(pageHeader(t("nav.requester"), t("requester.subtitle"), h("a", { class: "btn btn-primary", href: "#/publish" }, t("nav.publish"))), list);
    async function refresh() {
      const tasks = (await data("GET", "/task/get_my_tasks")).filter((task) => task.task_state !== "deleted");
      tasks.sort((a, b) => b.task_id - a.task_id);
      clear(list, tasks.length ? tasks.map((task) => taskCard(task, refresh)) : empty(t("requester.none")));
    }
    await refresh();
  },
};
