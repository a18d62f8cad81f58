// Requester: review one task, annotator by annotator: a sample or every answer (image boxes drawn on
// their image), then accept (pays), refuse, or report.
import { api, data, download } from "../api.js";
import { colorOf } from "../boxes.js";
import { t } from "../i18n.js";
import { alertBox, badge, busy, card, clear, empty, h, input, pageHeader, svg } from "../ui.js";

function answerView(task, q) {
  const result = q.result;
  if (result && typeof result === "object" && Array.isArray(result.boxes)) {
    const labels = task.tag_type || [];
    const overlay = svg("svg", { viewBox: `0 0 ${result.image_width} ${result.image_height}`, class: "thumb-overlay" });
    for (const box of result.boxes) {
      overlay.append(svg("rect", { x: box.x, y: box.y, width: box.width, height: box.height, fill: "none",
        stroke: colorOf(labels, box.label), "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
    }
    return h("div", { class: "answer" }, h("div", { class: "thumb" }, h("img", { src: q.data, alt: q.filename, loading: "lazy" }), overlay),
      h("div", { class: "answer-labels" }, result.boxes.map((box) => badge(box.label, "neutral"))));
  }
  const shown = typeof result === "string" ? result : JSON.stringify(result);
  const extra = q.input_result ? ` · ${JSON.stringify(q.input_result)}` : "";
  return h("div", { class: "answer" }, q.data_type === "image" ? h("div", { class: "thumb" }, h("img", { src: q.data, alt: q.filename, loading: "lazy" }))
    : h("p", { class: "answer-data" }, String(q.data).slice(0, 300)), h("p", { class: "answer-result" }, h("strong", {}, shown), extra));
}

function annotatorCard(task, entry, refresh) {
  const user = entry.tag_user;
  const answers = h("div", { class: "answers" });
  const errors = h("div", { class: "form-errors" });
  const load = (method) => async () => {
    const info = await data("POST", `/review/manual_check/${task.task_id}/${user.user_id}`, { json: { check_method: method } });
    clear(answers, info.q_info.length ? info.q_info.map((q) => answerView(task, q)) : empty(t("review.noanswers")));
  };
  const button = (label, work, kind = "", id) => {
    const element = h("button", { type: "button", class: `btn ${kind}`, id }, label);
    element.addEventListener("click", () => busy(element, work, errors));
    return element;
  };
  const reason = input({ placeholder: t("review.reason"), "aria-label": t("review.reason") });
  const canReview = entry.state === "finished" || entry.state === "timeout";
  return card(
    h("div", { class: "task-head" }, h("h3", {}, user.user_name || `#${user.user_id}`),
      badge(t(`state.${entry.state}`), entry.state === "review_accepted" ? "success" : "neutral")),
    h("p", { class: "muted" }, t("review.answered", { n: entry.answered || 0, total: task.q_num, credit: user.credit_score ?? "-" })),
    h("div", { class: "actions" },
      button(t("review.sample"), load("select")), button(t("review.all"), load("all")),
      button(t("review.csv"), () => download(`/review/download/${task.task_id}/${user.user_id}`, null, "answers.csv"))),
    answers,
    canReview && h("div", { class: "actions" },
      button(t("review.accept"), async () => {
        const outcome = await data("POST", `/review/accept/${task.task_id}/${user.user_id}`);
        errors.replaceChildren(alertBox(t("review.paid", { n: outcome.paid }), "success"));
        setTimeout(refresh, 600);
      }, "btn-primary", `accept-${user.user_id}`),
      button(t("review.refuse"), async () => { await data("POST", `/review/refuse/${task.task_id}/${user.user_id}`); await refresh(); }, "btn-danger")),
    h("div", { class: "inline" }, reason, button(t("review.report"), async () => {
      await api("POST", `/review/report/${task.task_id}/${user.user_id}`, { json: { reason: reason.value.trim() } });
      errors.replaceChildren(alertBox(t("review.reported"), "success"));
    }, "btn-ghost")),
    errors);
}

export default {
  title: "requester.review",
  async render(root, { taskId }) {
    const body = h("div", { class: "cards cards-wide" });
    root.append(body);
    async function refresh() {
      const task = await data("GET", `/task/${taskId}`);
      root.querySelector(".page-header")?.remove();
      root.prepend(pageHeader(`${t("requester.review")}: ${task.task_name}`, t("review.subtitle"),
        h("a", { class: "btn", href: "#/requester" }, t("work.back"))));
      const entries = task.current_tag_user_list || [];
      clear(body, entries.length ? entries.map((entry) => annotatorCard(task, entry, refresh)) : empty(t("requester.nobody")));
    }
    await refresh();
  },
};
