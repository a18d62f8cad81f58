// Expert (document 001): my Q&A missions, and labelling their records: rank the answers, keep or drop.
import { api } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, busy, card, clear, empty, errorText, h, pageHeader } from "../ui.js";

function recordCard(record) {
  const answers = (record.data_answer || []).map((answer) => ({ ...answer }));
  const question = h("textarea", { class: "input", rows: 2, "aria-label": t("missions.question") }, record.data_question || "");
  const keep = h("input", { type: "checkbox", checked: record.data_reserve !== 0 });
  const errors = h("div", { class: "form-errors" });
  const list = h("ol", { class: "ranked" });
  const draw = () => clear(list, answers.map((answer, i) => h("li", {}, h("span", {}, answer.answer),
    h("button", { type: "button", class: "btn btn-sm btn-ghost", disabled: i === 0, "aria-label": t("missions.up"),
      onclick: () => { [answers[i - 1], answers[i]] = [answers[i], answers[i - 1]]; draw(); } }, "↑"))));
  draw();
  const save = h("button", { type: "button", class: "btn btn-primary" }, t("missions.save"));
  save.addEventListener("click", () => busy(save, async () => {
    await api("PUT", "/data/label", { json: { data_id: record.data_id, data_question: question.value,
      data_answer: answers.map((answer, i) => ({ ...answer, ranking_number: i })), data_reserve: keep.checked ? 1 : 0 } });
    errors.replaceChildren(alertBox(t("common.saved"), "success"));
  }, errors));
  return card(h("p", { class: "muted" }, record.data_background || ""), question, list,
    h("label", { class: "check" }, keep, " ", t("missions.keep")), errors, h("div", { class: "actions" }, save));
}

export default {
  title: "nav.missions",
  async render(root) {
    const records = h("div", { class: "cards cards-wide" });
    const list = h("div", { class: "cards" });
    root.append(pageHeader(t("nav.missions"), t("missions.subtitle")), list, records);
    const missions = (await api("GET", "/task/list")).response;
    clear(list, Array.isArray(missions) && missions.length ? missions.map((mission) => card(
      h("h3", {}, `${mission.dataset_name || ""} · ${mission.area || ""}`), h("p", { class: "muted" }, mission.notice || ""),
      h("button", { type: "button", class: "btn", onclick: async () => {
        try {
          const answer = await api("GET", "/data/list", { query: { mission_id: mission.mission_id ?? mission.id } });
          clear(records, (answer.response || []).map(recordCard));
        } catch (error) {
          clear(records, alertBox(errorText(error)));
        }
      } }, t("missions.open")))) : empty(t("missions.none")));
  },
};
