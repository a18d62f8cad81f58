// Requester: my published tasks with their check state and progress per annotator; distribute,
// delegate to an agent, redistribute, review, download the results (majority and Dawid-Skene answers),
// delete; my points above them, since distributing holds each task's escrow from them.
import { api, data, download } from "../api.js";
import { t } from "../i18n.js";
import { profile } from "../session.js";
import { badge, busy, card, clear, empty, h, pageHeader, progressBar, stat, table } from "../ui.js";

const CHECK_KIND = { wait: "warning", accept: "success", refuse: "error" };

export function annotatorRows(task) {
  return (task.current_tag_user_list || []).map((entry) => h("tr", {},
    h("td", {}, entry.tag_user.user_name || `#${entry.tag_user.user_id}`),
    // The annotator's own word for an offer ("offered to you") is not the requester's or the agent's.
    h("td", {}, entry.state === "not_handle" ? t("requester.offered") : t(`state.${entry.state}`)),
    h("td", {}, h("div", { class: "cell-progress" }, progressBar((entry.answered || 0) / Math.max(1, task.q_num)),
      h("span", {}, `${entry.answered || 0}/${task.q_num}`)))));
}

// The whole-task CSV: only accepted work once every submission is reviewed; until then, every answer.
function resultsButton(task) {
  const waiting = (task.current_tag_user_list || []).some((entry) => entry.state === "finished");
  const type = waiting ? "all" : "accepted";
  const button = h("button", { type: "button", class: "btn", dataset: { results: task.task_id } },
    t(waiting ? "requester.downloadall" : "requester.download"));
  button.addEventListener("click", () => busy(button, () => download(`/review/download/${task.task_id}`, { type },
    `task-${task.task_id}-${type}.csv`)));
  return button;
}

function delegateForm(task, agents, act) {
  if (!agents.length) return null;
  const agent = h("select", { class: "input", "aria-label": t("requester.agent"), dataset: { agentFor: task.task_id } },
    agents.map((entry) => h("option", { value: entry.user_id }, t("requester.agentoption", { name: entry.user_name,
      credit: entry.credit_score }))));
  return h("div", { class: "field" }, h("div", { class: "inline" }, agent,
    act(t("requester.delegate"), () => data("POST", `/task/to_agent/${task.task_id}`, { json: { agent_id: agent.value } }),
      "", { delegate: task.task_id })),
  h("p", { class: "help" }, t("requester.delegatehelp")));
}

function taskCard(task, agents, refresh) {
  const errors = h("div", { class: "form-errors" });
  const act = (label, work, kind = "", dataset = null) => {
    const button = h("button", { type: "button", class: `btn ${kind}`, dataset }, label);
    button.addEventListener("click", () => busy(button, async () => { await work(); await refresh(); }, errors));
    return button;
  };
  const checked = task.check_result === "accept";
  const open = !task.is_distributed && task.task_state !== "deleted";
  const actions = [];
  if (open && checked) actions.push(act(t("requester.distribute"), () => data("POST", `/task/distribute/${task.task_id}`), "btn-primary"));
  if (task.is_distributed && task.task_state !== "finished" && !task.agent) {
    actions.push(act(t("requester.redistribute"), () => data("POST", `/task/redistribute/${task.task_id}`)));
  }
  if (task.is_distributed) {
    actions.push(h("a", { class: "btn btn-primary", href: `#/review/${task.task_id}`, dataset: { review: task.task_id } }, t("requester.review")));
    actions.push(resultsButton(task));
  }
  actions.push(act(t("requester.delete"), async () => { if (confirm(t("requester.deleteconfirm"))) await api("DELETE", `/task/${task.task_id}`); }, "btn-ghost"));
  const annotators = annotatorRows(task);
  const note = task.is_distributed ? t(task.agent ? "requester.agentnobody" : "requester.nobody")
    : t(checked ? "requester.ready" : task.check_result === "refuse" ? "requester.refused" : "requester.notdistributed");
  return card(
    h("div", { class: "task-head" }, h("h3", {}, task.task_name, " ", h("span", { class: "muted small" }, `#${task.task_id}`)),
      h("div", { class: "badges" }, badge(t(`check.${task.check_result}`), CHECK_KIND[task.check_result] || "neutral"),
        badge(t(`taskstate.${task.task_state}`), "neutral"))),
    h("p", { class: "muted" }, t("requester.summary", { q: task.q_num, reward: task.reward_per_q, people: task.distribute_user_num,
      held: task.reward_per_q * task.q_num * task.distribute_user_num })),
    task.agent && h("p", { class: "delegated" }, t("requester.delegated", { name: task.agent.user_name || `#${task.agent.user_id}` })),
    annotators.length ? table([t("requester.annotator"), t("requester.state"), t("common.progress")], annotators)
      : h("p", { class: "muted" }, note),
    open && checked && delegateForm(task, agents, act),
    h("div", { class: "actions" }, actions), errors);
}

export default {
  title: "nav.requester",
  async render(root) {
    const list = h("div", { class: "cards cards-wide", id: "requester-tasks" });
    const wallet = h("div", { class: "stats stats-narrow" });
    root.append(pageHeader(t("nav.requester"), t("requester.subtitle"), h("a", { class: "btn btn-primary", href: "#/publish" }, t("nav.publish"))),
      wallet, list);
    async function refresh() {
      const [mine, agents, me] = await Promise.all([data("GET", "/task/get_my_tasks"),
        // Without the agent list the tasks still show; only delegation is not offered.
        data("GET", "/user/get_agent_list").then((answer) => answer.agent_list || []).catch(() => []), profile()]);
      const tasks = mine.filter((task) => task.task_state !== "deleted").sort((a, b) => b.task_id - a.task_id);
      clear(wallet, stat(t("profile.points"), h("span", { id: "requester-points" }, String(me.score)),
        h("a", { href: "#/profile" }, t("requester.recharge"))));
      clear(list, tasks.length ? tasks.map((task) => taskCard(task, agents, refresh)) : empty(t("requester.none")));
    }
    await refresh();
  },
};
