// Annotator: tasks free to take and my tasks, with reward, deadline and progress; accept, refuse, work.
import { api, data } from "../api.js";
import { t } from "../i18n.js";
import { go } from "../router.js";
import { currentUser } from "../session.js";
import { badge, busy, card, clear, empty, formatDuration, formatTime, h, pageHeader, progressBar } from "../ui.js";

const STATE_KIND = { accepted: "info", not_handle: "warning", finished: "neutral", review_accepted: "success",
  review_refused: "error", timeout: "error", refused: "neutral" };

function taskType(task) {
  return t(`tasktype.${editorOf(task)}`);
}

// Which editor a task needs: bbox (image boxes), image (classify an image), text (tag a text), qa (inputs).
export function editorOf(task) {
  const type = String(task.task_type || "").toLowerCase();
  if (type === "bbox" || type === "image_bbox" || task.result_type === "bbox") return "bbox";
  if ((task.input_type || []).length && !(task.tag_type || []).length) return "qa";
  if (type.startsWith("image") || type === "picture") return "image";
  return "text";
}

function facts(task) {
  return h("dl", { class: "facts facts-inline" },
    h("dt", {}, t("tasks.reward")), h("dd", {}, t("tasks.perq", { n: task.reward_per_q })),
    h("dt", {}, t("tasks.questions")), h("dd", {}, String(task.q_num)),
    h("dt", {}, t("tasks.total")), h("dd", {}, t("tasks.points", { n: task.reward_per_q * task.q_num })),
    h("dt", {}, t("tasks.timelimit")), h("dd", {}, `${formatDuration(task.time_limit_per_q)} / ${formatDuration(task.total_time_limit)}`));
}

function freeCard(task, refresh) {
  const accept = h("button", { type: "button", class: "btn btn-primary", dataset: { accept: task.task_id } }, t("tasks.accept"));
  accept.addEventListener("click", () => busy(accept, async () => {
    await api("POST", `/task/accept/${task.task_id}`);
    go(`/work/${task.task_id}`);
  }));
  const refuse = h("button", { type: "button", class: "btn btn-ghost" }, t("tasks.skip"));
  refuse.addEventListener("click", () => busy(refuse, async () => { await api("POST", `/task/refuse/${task.task_id}`); await refresh(); }));
  return card(h("div", { class: "task-head" }, h("h3", {}, task.task_name), badge(taskType(task), "info")),
    task.task_style && h("p", { class: "muted" }, task.task_style), facts(task),
    h("div", { class: "actions" }, accept, refuse));
}

function mineCard(task, refresh) {
  const state = task.state || "accepted";
  const me = currentUser().user_id;
  const mine = (task.current_tag_user_list || []).find((entry) => entry.tag_user && entry.tag_user.user_id === me) || {};
  const deadline = mine.deadline;
  const actions = [];
  if (state === "not_handle") {
    const accept = h("button", { type: "button", class: "btn btn-primary" }, t("tasks.accept"));
    accept.addEventListener("click", () => busy(accept, async () => { await api("POST", `/task/accept/${task.task_id}`); go(`/work/${task.task_id}`); }));
    actions.push(accept);
  }
  if (state === "accepted") {
    actions.push(h("a", { class: "btn btn-primary", href: `#/work/${task.task_id}`, dataset: { work: task.task_id } },
      (task.answered || 0) ? t("tasks.continue") : t("tasks.start")));
  }
  if (state === "not_handle" || state === "accepted") {
    const refuse = h("button", { type: "button", class: "btn btn-ghost" }, t("tasks.refuse"));
    refuse.addEventListener("click", () => busy(refuse, async () => {
      if (!confirm(t("tasks.refuseconfirm"))) return;
      await api("POST", `/task/refuse/${task.task_id}`);
      await refresh();
    }));
    actions.push(refuse);
  }
  const paid = state === "review_accepted" ? task.reward_per_q * (task.answered || 0) : 0;
  return card(h("div", { class: "task-head" }, h("h3", {}, task.task_name), badge(t(`state.${state}`), STATE_KIND[state] || "neutral")),
    facts(task),
    h("div", { class: "task-progress" }, progressBar((task.answered || 0) / Math.max(1, task.q_num)),
      h("span", { class: "muted" }, t("tasks.answered", { n: task.answered || 0, total: task.q_num }))),
    deadline && h("p", { class: "muted" }, t("tasks.deadline", { time: formatTime(deadline) })),
    paid > 0 && h("p", { class: "paid" }, t("tasks.paid", { n: paid })),
    actions.length > 0 && h("div", { class: "actions" }, actions));
}

export default {
  title: "nav.tasks",
  async render(root) {
    const free = h("div", { class: "cards", id: "free-tasks" });
    const mine = h("div", { class: "cards", id: "my-tasks" });
    root.append(pageHeader(t("nav.tasks"), t("tasks.subtitle")),
      h("h2", { class: "section-title" }, t("tasks.mine")), mine,
      h("h2", { class: "section-title" }, t("tasks.free")), free);
    async function refresh() {
      const [freeTasks, myTasks] = await Promise.all([data("GET", "/task/get_free_tasks"), data("GET", "/task/get_my_tasks")]);
      const active = myTasks.filter((task) => task.state !== "refused");
      clear(mine, active.length ? active.map((task) => mineCard(task, refresh)) : empty(t("tasks.nomine")));
      clear(free, freeTasks.length ? freeTasks.map((task) => freeCard(task, refresh)) : empty(t("tasks.nofree")));
    }
    await refresh();
  },
};
