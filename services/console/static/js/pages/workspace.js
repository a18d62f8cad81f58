// The labeling workspace: one question at a time with the editor its task needs (text tag, image
// class, image bounding boxes, Q&A inputs), keyboard shortcuts, the next question prefetched, a timer
// against the task's limits, submission and what was paid. A draft survives a failed submit and a
// reload (sessionStorage) until the answer is stored.
import { api, data } from "../api.js";
import { BoxEditor } from "../boxes.js";
import { t } from "../i18n.js";
import { currentUser } from "../session.js";
import { alertBox, badge, clear, errorText, formatDuration, h, pageHeader, progressBar, toast } from "../ui.js";
import { editorOf } from "./tasks.js";

const PREFETCH_AHEAD = 2;

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => (image.decode ? image.decode().catch(() => {}) : Promise.resolve()).then(() => resolve(image));
    image.onerror = () => reject(new Error(t("work.imagefailed")));
    image.src = url;
  });
}

export default {
  title: "work.title",
  async render(root, { taskId }) {
    const task = await data("GET", `/task/${taskId}`);
    const kind = editorOf(task);
    const labels = task.tag_type || [];
    const inputs = task.input_type || [];
    const me = (task.current_tag_user_list || []).find((entry) => entry.tag_user && entry.tag_user.user_id === currentUser().user_id) || {};
    let info = await data("GET", `/task/taginfo/${taskId}`);
    const cache = new Map(); // q_id -> Promise<{question, image}>
    let index = Math.max(0, info.findIndex((q) => q.state !== "finished"));
    if (info.every((q) => q.state === "finished")) index = 0;
    let current = null; // {question, image}
    let choice = null; // chosen label (text / image tasks)
    let choiceHistory = [];
    let submitting = false;
    const draftKey = (qId) => `labelhive.draft.${taskId}.${qId}`;

    const editorSlot = h("div", { class: "editor-slot" });
    const sidebar = h("aside", { class: "work-side" });
    const status = h("div", { class: "work-status" });
    const errors = h("div", { class: "form-errors", id: "work-errors" });
    const perQTimer = h("span", { class: "timer", id: "q-timer" });
    const totalTimer = h("span", { class: "timer", id: "total-timer" });
    const counter = h("span", { class: "counter", id: "q-counter" });
    const progressSlot = h("div", {});
    const prev = h("button", { type: "button", class: "btn", onclick: () => move(-1), "aria-keyshortcuts": "ArrowLeft" }, `← ${t("work.prev")}`);
    const next = h("button", { type: "button", class: "btn", onclick: () => move(1), "aria-keyshortcuts": "ArrowRight" }, `${t("work.next")} →`);
    const submit = h("button", { type: "button", class: "btn btn-primary", id: "submit-answer", onclick: () => submitAnswer(),
      "aria-keyshortcuts": "Enter" }, t("work.submit"));
    const boxEditor = kind === "bbox" ? new BoxEditor(labels, { onChange: () => saveDraft() }) : null;
    const inputFields = inputs.map((tip, i) => h("textarea", { class: "input", rows: 3, "aria-label": tip, dataset: { input: i },
      oninput: () => saveDraft() }));

    root.append(
      pageHeader(task.task_name, task.task_style, badge(t(`tasktype.${kind}`), "info")),
      h("div", { class: "work-bar" }, counter, progressSlot,
        h("span", { class: "muted" }, t("work.perq")), perQTimer, h("span", { class: "muted" }, t("work.total")), totalTimer),
      h("div", { class: "work" }, h("div", { class: "work-main" }, editorSlot, errors,
        h("div", { class: "work-actions" }, prev, submit, next)), sidebar),
      status);

    function question(qId) {
      if (!cache.has(qId)) {
        const promise = data("GET", `/task/${taskId}/${qId}`).then(async (q) => {
          const image = q.data_type === "image" ? await loadImage(q.data) : null;
          return { question: q, image };
        });
        promise.catch(() => cache.delete(qId));
        cache.set(qId, promise);
      }
      return cache.get(qId);
    }

    function prefetch() {
      for (let ahead = 1; ahead <= PREFETCH_AHEAD; ahead++) {
        const entry = info[index + ahead];
        if (entry) question(entry.q_id).catch(() => {});
      }
    }

    function myAnswer(q) {
      const mine = (q.result || [])[0];
      return mine ? { result: mine.tag_res, input_result: mine.input_result } : null;
    }

    function saveDraft() {
      if (!current || info[index].state === "finished") return;
      sessionStorage.setItem(draftKey(current.question.q_id), JSON.stringify(answer()));
    }

    function answer() {
      if (kind === "bbox") return { result: boxEditor.result(), input_result: null };
      const typed = inputFields.map((field) => field.value);
      if (kind === "qa") return { result: labels.length ? choice : typed, input_result: labels.length ? typed : null };
      return { result: choice, input_result: inputs.length ? typed : null };
    }

    function renderChoices(readOnly) {
      return h("div", { class: "choices", role: "radiogroup", "aria-label": t("work.labels") },
        labels.map((label, i) => h("button", { type: "button", class: `choice${choice === label ? " chosen" : ""}`, role: "radio",
          "aria-checked": String(choice === label), disabled: readOnly, dataset: { label },
          onclick: () => choose(i) }, h("kbd", {}, String(i + 1)), label)));
    }

    function choose(i) {
      if (info[index].state === "finished" || labels[i] === undefined) return;
      choiceHistory.push(choice);
      choice = labels[i];
      saveDraft();
      draw();
    }

    function draw() {
      const q = current.question;
      const finished = info[index].state === "finished";
      const saved = finished ? myAnswer(q) : null;
      clear(counter, t("work.counter", { n: index + 1, total: info.length }));
      clear(progressSlot, progressBar(info.filter((x) => x.state === "finished").length / info.length));
      prev.disabled = index === 0;
      next.disabled = index === info.length - 1;
      submit.disabled = finished || submitting;
      submit.textContent = finished ? t("work.submitted") : t("work.submit");
      if (kind === "bbox") {
        if (!editorSlot.contains(boxEditor.element)) clear(editorSlot, boxEditor.element);
        sidebar.replaceChildren(h("h3", {}, t("work.labels")), labelLegend(), h("h3", {}, t("work.boxes")), boxEditor.list, shortcuts());
      } else {
        const content = q.data_type === "image"
          ? h("div", { class: "image-frame" }, h("img", { src: current.image.src, alt: q.filename }))
          : h("div", { class: "text-frame" }, (q.data || []).map((line) => h("p", {}, line)));
        clear(editorSlot, content, labels.length ? renderChoices(finished) : null,
          inputs.length ? h("div", { class: "qa-inputs" }, inputs.map((tip, i) => h("label", { class: "field" }, h("span", {}, tip), inputFields[i]))) : null);
        sidebar.replaceChildren(h("h3", {}, t("work.question")), h("p", { class: "muted" }, q.filename), shortcuts());
      }
      if (saved) sidebar.prepend(alertBox(t("work.alreadysubmitted"), "info"));
    }

    function labelLegend() {
      return h("ol", { class: "legend" }, labels.map((label, i) => h("li", { class: boxEditor.currentLabel === label ? "current" : "" },
        h("kbd", {}, String(i + 1)), label)));
    }

    function shortcuts() {
      return h("details", { class: "shortcuts" }, h("summary", {}, t("work.shortcuts")),
        h("ul", {}, ["work.key.number", "work.key.enter", "work.key.arrows", "work.key.undo",
          ...(kind === "bbox" ? ["work.key.delete", "work.key.pan", "work.key.zoom"] : [])].map((key) => h("li", {}, t(key)))));
    }

    async function show(newIndex) {
      const started = performance.now();
      index = newIndex;
      errors.replaceChildren();
      let loaded;
      try {
        loaded = await question(info[index].q_id);
      } catch (error) {
        errors.replaceChildren(alertBox(errorText(error)));
        return;
      }
      if (info[index].q_id !== loaded.question.q_id) return;
      current = loaded;
      const q = current.question;
      const finished = info[index].state === "finished";
      const draft = finished ? myAnswer(q) : JSON.parse(sessionStorage.getItem(draftKey(q.q_id)) || "null");
      choice = null;
      choiceHistory = [];
      inputFields.forEach((field) => { field.value = ""; field.disabled = finished; });
      if (kind === "bbox") {
        const boxes = draft && draft.result && Array.isArray(draft.result.boxes) ? draft.result.boxes : [];
        if (!editorSlot.contains(boxEditor.element)) clear(editorSlot, boxEditor.element);
        boxEditor.load(current.image, boxes, finished);
      } else if (draft) {
        if (kind === "qa" && !labels.length) (draft.result || []).forEach((v, i) => { if (inputFields[i]) inputFields[i].value = v; });
        else choice = draft.result;
        (draft.input_result || []).forEach?.((v, i) => { if (inputFields[i]) inputFields[i].value = v; });
      }
      draw();
      const shown = performance.now() - started;
      window.dispatchEvent(new CustomEvent("labelhive:question-shown", { detail: { q_id: q.q_id, ms: shown } }));
      prefetch();
      if (!finished && info[index].state === "notstarted") {
        info[index].state = "started";
        api("POST", `/task/startquestion/${taskId}/${q.q_id}`).then(() => { info[index].startat = Date.now() / 1000; })
          .catch(() => {}); // 59 "already start": the question was started before
        info[index].startat = Date.now() / 1000;
      }
    }

    function move(step) {
      const target = index + step;
      if (target >= 0 && target < info.length) show(target);
    }

    async function submitAnswer() {
      if (submitting || info[index].state === "finished") return;
      const body = answer();
      if (kind !== "bbox" && kind !== "qa" && !body.result) {
        errors.replaceChildren(alertBox(t("work.choosefirst")));
        return;
      }
      if (kind === "bbox" && !body.result.boxes.length && !confirm(t("work.noboxes"))) return;
      submitting = true;
      submit.disabled = true;
      errors.replaceChildren();
      const qId = current.question.q_id;
      try {
        const outcome = await data("POST", `/task/upload_res/${taskId}/${qId}`, { json: body });
        sessionStorage.removeItem(draftKey(qId));
        info[index].state = "finished";
        cache.delete(qId);
        toast(t("work.saved", { n: outcome.answered, total: outcome.q_num }), "success");
        if (outcome.state !== "accepted") return finish(outcome);
        const nextOpen = info.findIndex((entry, i) => i > index && entry.state !== "finished");
        const anyOpen = nextOpen >= 0 ? nextOpen : info.findIndex((entry) => entry.state !== "finished");
        if (anyOpen >= 0) await show(anyOpen);
        else draw();
      } catch (error) {
        errors.replaceChildren(alertBox(errorText(error))); // the answer stays in the editor
      } finally {
        submitting = false;
        if (current) submit.disabled = info[index].state === "finished";
      }
    }

    async function finish(outcome) {
      const view = await data("GET", `/task/${taskId}`).catch(() => task);
      const paid = view.state === "review_accepted" ? view.reward_per_q * outcome.answered : 0;
      clear(status, alertBox(paid ? t("work.donepaid", { n: paid }) : t("work.donewait", { n: task.reward_per_q * outcome.answered }), "success"),
        h("a", { class: "btn", href: "#/tasks" }, t("work.back")));
      draw();
    }

    function tick() {
      const nowSeconds = Date.now() / 1000;
      const entry = info[index];
      if (entry && entry.state !== "finished" && entry.startat) {
        const left = task.time_limit_per_q - (nowSeconds - entry.startat);
        perQTimer.textContent = formatDuration(left);
        perQTimer.classList.toggle("late", left < 0);
      } else {
        perQTimer.textContent = "-";
      }
      if (me.deadline) {
        const left = me.deadline - nowSeconds;
        totalTimer.textContent = formatDuration(left);
        totalTimer.classList.toggle("late", left < 60);
      } else {
        totalTimer.textContent = formatDuration(task.total_time_limit);
      }
    }

    function onKey(event) {
      const typing = ["TEXTAREA", "INPUT", "SELECT"].includes(document.activeElement?.tagName);
      if (typing && event.key !== "Enter") return;
      if (typing && event.key === "Enter" && !(event.ctrlKey || event.metaKey)) return;
      if (boxEditor && boxEditor.keyDown(event)) return;
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" || (!event.ctrlKey && event.key === "z")) {
        event.preventDefault();
        if (boxEditor) boxEditor.undo();
        else if (choiceHistory.length) { choice = choiceHistory.pop(); saveDraft(); draw(); }
        return;
      }
      if (/^[1-9]$/.test(event.key) && !event.ctrlKey && !event.altKey && !event.metaKey) {
        event.preventDefault();
        if (boxEditor) { boxEditor.setLabel(Number(event.key) - 1); draw(); } else choose(Number(event.key) - 1);
      } else if (event.key === "Enter") {
        if (document.activeElement?.tagName === "BUTTON" && document.activeElement !== submit) return;
        event.preventDefault();
        submitAnswer();
      } else if (event.key === "ArrowRight" || event.key === "]") {
        event.preventDefault();
        move(1);
      } else if (event.key === "ArrowLeft" || event.key === "[") {
        event.preventDefault();
        move(-1);
      }
    }

    window.addEventListener("keydown", onKey);
    const timer = setInterval(tick, 500);
    if (!info.length) {
      clear(editorSlot, alertBox(t("work.noquestions"), "info"));
    } else {
      await show(index);
      if (info.every((q) => q.state === "finished")) finish({ answered: info.length, q_num: info.length });
    }
    tick();
    return () => {
      window.removeEventListener("keydown", onKey);
      clearInterval(timer);
      if (boxEditor) boxEditor.destroy();
    };
  },
};
