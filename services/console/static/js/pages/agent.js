// Agent (document 003's intermediary): the tasks requesters delegated to me, who has each one and how
// far they got, and handing a task to annotators one by one (each hand-over takes one of its slots; the
// annotator then accepts or refuses it in their own task list).
import { data } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, badge, busy, card, clear, empty, h, pageHeader, progressBar, table } from "../ui.js";
import { annotatorRows } from "./requester.js";
import { editorOf } from "./tasks.js";

function handOver(task, annotators, refresh, notice) {
  const current = task.current_tag_user_list || [];
  // Who had the task before (refused, timed out) cannot be given it again: the platform refuses them.
  const had = new Set([...current.map((entry) => entry.tag_user.user_id),
    ...(task.past_tag_user_list || []).map((user) => user && user.user_id)]);
  const slots = task.distribute_user_num - (task.current_tag_user_num ?? current.length);
  if (task.task_state !== "distributed") return null;
  if (slots <= 0) return h("p", { class: "muted" }, t("agent.full"));
  const candidates = annotators.filter((user) => !user.is_banned && !had.has(user.user_id));
  if (!candidates.length) return h("p", { class: "muted" }, t("agent.nocandidates"));
  const errors = h("div", { class: "form-errors" });
  const who = h("select", { class: "input", "aria-label": t("agent.annotator"), dataset: { annotatorFor: task.task_id } },
    candidates.map((user) => h("option", { value: user.user_id },
      t("agent.candidate", { name: user.user_name, credit: user.credit_score }))));
  const give = h("button", { type: "button", class: "btn btn-primary", dataset: { give: task.task_id } }, t("agent.give"));
  give.addEventListener("click", () => busy(give, async () => {
    const name = candidates.find((user) => String(user.user_id) === who.value)?.user_name || who.value;
    await data("POST", `/task/distribute_to_user/${task.task_id}/${who.value}`);
    await refresh();
    notice.replaceChildren(alertBox(t("agent.given", { name }), "success"));
  }, errors));
  return h("div", { class: "field" },
    h("div", { class: "inline" }, who, give),
    h("p", { class: "help" }, t("agent.givehelp", { n: slots })), errors);
}

function taskCard(task, annotators, refresh, notice) {
  const given = task.current_tag_user_num ?? (task.current_tag_user_list || []).length;
  const rows = annotatorRows(task);
  return card(
    h("div", { class: "task-head" }, h("h3", {}, task.task_name, " ", h("span", { class: "muted small" }, `#${task.task_id}`)),
      h("div", { class: "badges" }, badge(t(`tasktype.${editorOf(task)}`), "info"), badge(t(`taskstate.${task.task_state}`), "neutral"))),
    task.task_style && h("p", { class: "muted" }, task.task_style),
    h("p", { class: "muted" }, t("agent.summary", { publisher: task.publisher?.user_name || "-", q: task.q_num,
      reward: task.reward_per_q })),
    h("div", { class: "task-progress" }, progressBar(given / Math.max(1, task.distribute_user_num), t("agent.slots")),
      h("span", { class: "muted" }, t("agent.given.count", { n: given, total: task.distribute_user_num }))),
    rows.length ? table([t("requester.annotator"), t("requester.state"), t("common.progress")], rows)
      : h("p", { class: "muted" }, t("agent.nobody")),
    handOver(task, annotators, refresh, notice));
}

export default {
  title: "nav.agent",
  async render(root) {
    const list = h("div", { class: "cards cards-wide", id: "agent-tasks" });
    const notice = h("div", { id: "agent-notice", class: "form-errors" });
    root.append(pageHeader(t("nav.agent"), t("agent.subtitle")), notice, list);
    async function refresh() {
      const [tasks, annotators] = await Promise.all([data("GET", "/task/get_my_tasks"),
        data("GET", "/user/get_all_users", { query: { type: "tag" } })]);
      const open = tasks.filter((task) => task.task_state !== "deleted").sort((a, b) => b.task_id - a.task_id);
      annotators.sort((a, b) => b.credit_score - a.credit_score || a.user_name.localeCompare(b.user_name));
      clear(list, open.length ? open.map((task) => taskCard(task, annotators, refresh, notice)) : empty(t("agent.none")));
    }
    await refresh();
  },
};
