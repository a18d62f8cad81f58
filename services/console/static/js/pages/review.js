// Requester: review one task, annotator by annotator: a sample or every answer (image boxes drawn on
// their image), then accept (pays), refuse, or report; and the task's results, consolidated per
// question by majority vote and Dawid-Skene (the platform's result CSV, shown and downloadable).
import { api, data, download } from "../api.js";
import { colorOf } from "../boxes.js";
import { parseCsv } from "../csv.js";
import { t } from "../i18n.js";
import { alertBox, badge, busy, card, clear, empty, errorText, h, input, pageHeader, svg, table } from "../ui.js";

// An answer key of the CSV in words: image boxes as their count and labels, long texts shortened.
function answerText(key) {
  if (!key) return "";
  try {
    const value = JSON.parse(key);
    if (value && Array.isArray(value.boxes)) return t("results.boxes", { n: value.boxes.length, labels: value.boxes.map((box) => box.label).join(", ") });
  } catch { /* a plain label */ }
  return key.length > 60 ? `${key.slice(0, 57)}…` : key;
}

function resultsTable(rows) {
  const [header, ...body] = rows;
  const accuracy = body.length && body[body.length - 1][0] === "annotator_accuracy" ? body.pop() : null;
  const annotators = header.slice(9);
  if (!body.length) return empty(t("review.noanswers"));
  const cell = (key, attrs = {}) => h("td", { title: key, ...attrs }, answerText(key));
  const head = [t("results.question"), t("results.majority"), t("results.dawidskene"), ...annotators];
  const element = table(head, body.map((row) => h("tr", {},
    h("td", {}, row[1] || `#${row[0]}`),
    h("td", { class: "consensus", title: row[4] }, answerText(row[4]), row[4] && h("span", { class: "muted small" },
      ` ${t("results.votes", { n: row[5], total: row[6] })}`)),
    row[7] ? h("td", { class: "consensus", title: row[7] }, answerText(row[7]), h("span", { class: "muted small" }, ` ${Number(row[8]).toFixed(2)}`))
      : h("td", { class: "muted small" }, t("results.dsneeds")),
    row.slice(9).map((key) => cell(key)))));
  element.querySelector("table").classList.add("results-table");
  if (accuracy) {
    element.querySelector("table").append(h("tfoot", {}, h("tr", {}, h("td", { colspan: 3 }, t("results.accuracy")),
      accuracy.slice(9).map((value) => h("td", {}, `${Math.round(Number(value) * 100)}%`)))));
  }
  return element;
}

// The task's results: accepted work only (once every submission is reviewed) or every answer so far.
function resultsCard(task) {
  const waiting = (task.current_tag_user_list || []).some((entry) => entry.state === "finished");
  const type = h("select", { class: "input", id: "results-type", "aria-label": t("results.which") },
    ["accepted", "all"].map((value) => h("option", { value, selected: value === (waiting ? "all" : "accepted") }, t(`results.${value}`))));
  const slot = h("div", { id: "results" });
  const load = async () => {
    clear(slot, h("p", { class: "muted" }, t("common.loading")));
    try {
      const response = await api("GET", `/review/download/${task.task_id}`, { query: { type: type.value }, raw: true });
      clear(slot, resultsTable(parseCsv(await response.text())));
    } catch (error) {
      clear(slot, alertBox(errorText(error), "info"));
    }
  };
  type.addEventListener("change", load);
  const save = h("button", { type: "button", class: "btn", id: "results-download" }, t("results.download"));
  save.addEventListener("click", () => busy(save, () => download(`/review/download/${task.task_id}`, { type: type.value },
    `task-${task.task_id}-${type.value}.csv`)));
  load();
  return card(h("div", { class: "task-head" }, h("h3", {}, t("results.title")), h("div", { class: "inline" }, type, save)),
    h("p", { class: "muted" }, t("results.help")), slot);
}

function answerView(task, q) {
  const result = q.result;
  if (result && typeof result === "object" && Array.isArray(result.boxes)) {
    const labels = task.tag_type || [];
    const overlay = svg("svg", { viewBox: `0 0 ${result.image_width} ${result.image_height}`, class: "thumb-overlay" });
    for (const box of result.boxes) {
      overlay.append(svg("rect", { x: box.x, y: box.y, width: box.width, height: box.height, fill: "none",
        stroke: colorOf(labels, box.label), "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
    }
    // The box is sized from the answer before the image arrives, so the page does not jump as they load.
    const frame = { class: "thumb", style: { aspectRatio: `${result.image_width} / ${result.image_height}` } };
    return h("div", { class: "answer" }, h("div", frame, h("img", { src: q.data, alt: q.filename, loading: "lazy" }), overlay),
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
      root.prepend(pageHeader(t("review.title", { name: task.task_name }), t("review.subtitle"),
        h("a", { class: "btn", href: "#/requester" }, t("work.back"))));
      const entries = task.current_tag_user_list || [];
      clear(body, entries.length ? [...entries.map((entry) => annotatorCard(task, entry, refresh)), resultsCard(task)]
        : empty(t("requester.nobody")));
    }
    await refresh();
  },
};
