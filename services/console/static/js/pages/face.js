// AI: the face engine (document 002). Collections I made (remembered in this browser: 002 has no
// "list collections"), enrolment by drag-and-drop, 1:N search by photo, 1:1 compare.
import { api } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, busy, card, clear, dropZone, errorText, field, fileToBase64, h, input, pageHeader } from "../ui.js";

const PREFIX = "/api/v1/engine/recocomp";
const STORAGE_KEY = "labelhive.face.collections";

const remembered = () => JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
const remember = (names) => localStorage.setItem(STORAGE_KEY, JSON.stringify([...new Set(names)]));
const call = (path, json) => api("POST", `${PREFIX}${path}`, { json });

function preview(file) {
  return h("img", { class: "face-thumb", src: URL.createObjectURL(file), alt: file.name });
}

function scoreBar(score) {
  const percent = Math.round(score * 100);
  return h("div", { class: `score ${score >= 0.5 ? "match" : ""}` }, h("div", { class: "score-bar", style: { width: `${percent}%` } }),
    h("span", {}, score.toFixed(3)));
}

export default {
  title: "nav.face",
  async render(root) {
    const collection = h("select", { class: "input", id: "face-collection", "aria-label": t("face.collection") });
    const newName = input({ name: "collection_name", placeholder: "face_col", pattern: "[A-Za-z0-9_\\-]+" });
    const status = h("div", { class: "muted" });
    const errors = h("div", { class: "form-errors" });

    async function refreshCollections(select) {
      const names = remembered();
      clear(collection, names.map((name) => h("option", { value: name, selected: name === select }, name)));
      if (!names.length) { status.textContent = t("face.nocollections"); return; }
      try {
        const answer = await call("/collection/status", { collection_name: names });
        const rows = Array.isArray(answer.status) ? answer.status : [];
        status.textContent = rows.map((row) => t("face.status", { name: row.collection_name, n: row.feature_num })).join(" · ");
      } catch (error) {
        status.textContent = errorText(error);
      }
    }

    const create = h("button", { type: "button", class: "btn" }, t("face.create"));
    create.addEventListener("click", () => busy(create, async () => {
      const name = newName.value.trim();
      await call("/create/collection", { collection_name: name });
      remember([...remembered(), name]);
      newName.value = "";
      await refreshCollections(name);
    }, errors));

    // Enrol: each dropped photo becomes a target (its file name, or the id typed).
    const targetId = input({ name: "target_id", placeholder: t("face.targethelp") });
    const enrolled = h("div", { class: "face-grid", id: "enrolled" });
    const enrolErrors = h("div", { class: "form-errors" });
    const enrolZone = dropZone(t("face.enroldrop"), async (files) => {
      enrolErrors.replaceChildren();
      try {
        const images = await Promise.all(files.map(fileToBase64));
        const targets = files.map((file) => targetId.value.trim() || file.name.replace(/\.[^.]+$/, ""));
        const answer = await call("/face/insert", { collection_name: collection.value, face_image: images, target_id: targets });
        const invalid = answer.invalid?.message?.invalid_index || [];
        files.forEach((file, i) => enrolled.append(h("figure", { class: invalid.includes(i) ? "refused" : "" }, preview(file),
          h("figcaption", {}, targets[i], invalid.includes(i) ? ` — ${answer.invalid.message.invalid_reason[invalid.indexOf(i)]}` : ""))));
        enrolErrors.replaceChildren(alertBox(t("face.enrolled", { n: answer.success_num ?? 0 }), "success"));
        await refreshCollections(collection.value);
      } catch (error) {
        enrolErrors.replaceChildren(alertBox(errorText(error)));
      }
    });

    // Search: the top matches of the photo's face, best first, with their calibrated scores.
    const results = h("div", { class: "matches", id: "face-matches" });
    const searchZone = dropZone(t("face.searchdrop"), async ([file]) => {
      clear(results, h("div", { class: "loading-inline" }, t("common.loading")));
      try {
        const answer = await call("/face/search", { collection_name: collection.value, face_image: await fileToBase64(file), top_k: 5 });
        const matches = answer.status || [];
        clear(results, h("div", { class: "query" }, preview(file), h("p", { class: "muted" }, t("face.query"))),
          matches.length ? h("ol", { class: "match-list" }, matches.map((match, i) => h("li", { class: i === 0 && match.score >= 0.5 ? "best" : "" },
            h("span", { class: "match-name" }, match.result), scoreBar(match.score),
            h("span", { class: "muted small" }, match.score >= 0.5 ? t("face.same") : t("face.different")))))
            : h("p", {}, t("face.nomatch")));
      } catch (error) {
        clear(results, alertBox(errorText(error)));
      }
    }, { multiple: false });

    // Compare two photos.
    const pair = [];
    const compareOut = h("div", { id: "compare-result" });
    const compareZone = dropZone(t("face.comparedrop"), async (files) => {
      pair.push(...files);
      while (pair.length > 2) pair.shift();
      clear(compareOut, h("div", { class: "face-grid" }, pair.map(preview)));
      if (pair.length < 2) return;
      try {
        const [one, two] = await Promise.all(pair.map(fileToBase64));
        const answer = await api("POST", `${PREFIX}/face/compare`, { json: { face_image1: one, face_image2: two } });
        compareOut.append(scoreBar(answer.score), h("p", {}, answer.score >= 0.5 ? t("face.same") : t("face.different")));
      } catch (error) {
        compareOut.append(alertBox(errorText(error)));
      }
    });

    root.append(pageHeader(t("nav.face"), t("face.subtitle")),
      card(h("h2", {}, t("face.collections")), h("div", { class: "inline" }, collection, newName, create), status, errors),
      h("div", { class: "grid-2" },
        card(h("h2", {}, t("face.enrol")), field(t("face.target"), targetId), enrolZone, enrolErrors, enrolled),
        card(h("h2", {}, t("face.search")), searchZone, results)),
      card(h("h2", {}, t("face.compare")), compareZone, compareOut));
    await refreshCollections(remembered()[0]);
  },
};
