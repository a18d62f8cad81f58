// Requester: publish a task. The form explains each field and shows the escrow distribution will hold.
import { data, upload } from "../api.js";
import { t } from "../i18n.js";
import { go } from "../router.js";
import { profile } from "../session.js";
import { alertBox, busy, card, dropZone, field, h, input, pageHeader, progressBar } from "../ui.js";
import { zipStored } from "../zip.js";

const KINDS = ["bbox", "image", "text", "qa"];

// Image questions are JPEG files: other formats are converted in the browser (a canvas re-encode).
async function asJpeg(file) {
  if (file.type === "image/jpeg") return file;
  const bitmap = await createImageBitmap(file);
  const canvas = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
}

export default {
  title: "nav.publish",
  render(root) {
    let files = [];
    const name = input({ name: "task_name", required: true, minlength: 4, maxlength: 24 });
    const kind = h("select", { class: "input", name: "task_kind" }, KINDS.map((k) => h("option", { value: k }, t(`tasktype.${k}`))));
    const style = h("textarea", { class: "input", name: "task_style", rows: 2 });
    const labels = input({ name: "tag_type", placeholder: t("publish.labelsexample") });
    const questions = input({ name: "input_type", placeholder: t("publish.inputsexample") });
    const reward = input({ name: "reward_per_q", type: "number", min: "1", value: "5" });
    const perQ = input({ name: "time_limit_per_q", type: "number", min: "1", value: "300" });
    const total = input({ name: "total_time_limit", type: "number", min: "1", value: "86400" });
    const people = input({ name: "distribute_user_num", type: "number", min: "1", value: "1" });
    const strategy = h("select", { class: "input", name: "strategy" }, ["toall", "order", "smart"].map((s) => h("option", { value: s }, t(`strategy.${s}`))));
    const acceptMethod = h("select", { class: "input", name: "accept_method" }, ["manual", "auto"].map((m) => h("option", { value: m }, t(`accept.${m}`))));
    const distributeNow = h("input", { type: "checkbox", name: "distribute_now" });
    const escrow = h("div", { class: "escrow", id: "escrow", "aria-live": "polite" });
    const fileList = h("p", { class: "muted", id: "file-count" }, t("publish.nofiles"));
    const progress = h("div", {});
    const errors = h("div", { class: "form-errors" });
    const submit = h("button", { type: "submit", class: "btn btn-primary", id: "publish-submit" }, t("publish.submit"));

    const isText = () => kind.value === "text" || (kind.value === "qa" && files.every((f) => f.name.endsWith(".txt")));
    let points = null; // the requester's points, to set the escrow against
    const updateEscrow = () => {
      const count = files.length;
      const held = Number(reward.value || 0) * count * Number(people.value || 0);
      escrow.replaceChildren(h("strong", {}, t("publish.escrow", { n: held })),
        h("span", { class: "muted" }, t("publish.escrowhelp", { reward: reward.value || 0, q: count, people: people.value || 0 })),
        points !== null && h("span", { class: held > points ? "short" : "muted", id: "escrow-points" },
          t(held > points ? "publish.short" : "publish.points", { n: points }), " ",
          h("a", { href: "#/profile" }, t("requester.recharge"))));
    };
    profile().then((me) => { points = me.score; updateEscrow(); }).catch(() => {});
    for (const control of [reward, people]) control.addEventListener("input", updateEscrow);
    const zone = dropZone(t("publish.drop"), (picked) => {
      files = picked.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
      fileList.textContent = t("publish.files", { n: files.length, names: files.slice(0, 5).map((f) => f.name).join(", ") });
      updateEscrow();
    }, { accept: "image/*,.txt" });
    updateEscrow();

    const form = h("form", { class: "stack", onsubmit: (event) => {
      event.preventDefault();
      busy(submit, async () => {
        if (!files.length) throw new Error(t("publish.nofiles"));
        // 003's upload_data wants 1.txt, 2.txt, ... or 1.jpg, 2.jpg, ...: numbered in the order shown.
        const text = isText();
        const entries = await Promise.all(files.map(async (file, i) => ({
          name: `${i + 1}.${text ? "txt" : "jpg"}`, bytes: new Uint8Array(await (text ? file : await asJpeg(file)).arrayBuffer()) })));
        const formData = new FormData();
        formData.append("file", zipStored(entries), "data.zip");
        const bar = progressBar(0, t("publish.uploading"));
        progress.replaceChildren(h("p", { class: "muted" }, t("publish.uploading")), bar);
        const uploaded = await upload("/task/upload_data", formData, (fraction) => {
          bar.firstChild.style.width = `${Math.round(fraction * 100)}%`;
          bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
        }, { query: { data_type: isText() ? "text" : "image" } });
        const split = (value) => value.split(/[,，]/).map((s) => s.trim()).filter(Boolean);
        const body = {
          task_type: kind.value, task_style: style.value, task_name: name.value.trim(), reward_per_q: Number(reward.value),
          time_limit_per_q: Number(perQ.value), total_time_limit: Number(total.value), distribute_user_num: Number(people.value),
          accept_method: acceptMethod.value, strategy: strategy.value, files: uploaded.body.data,
          tag_type: split(labels.value), input_type: kind.value === "qa" ? split(questions.value) : [], cut_num: "1",
          result_type: kind.value === "bbox" ? "bbox" : null, stdans_tag: "" };
        const created = await data("POST", "/task/", { json: body });
        progress.replaceChildren(alertBox(t("publish.created", { id: created.task_id }), "success"));
        if (distributeNow.checked) {
          try {
            await data("POST", `/task/distribute/${created.task_id}`);
          } catch (error) {
            progress.append(alertBox(t("publish.notdistributed", { error: error.message }), "warning"));
            return;
          }
        }
        setTimeout(() => go("/requester"), 800);
      }, errors);
    } },
    card(h("h2", {}, t("publish.what")),
      field(t("publish.name"), name, t("publish.namehelp")),
      field(t("publish.kind"), kind, t("publish.kindhelp")),
      field(t("publish.style"), style, t("publish.stylehelp")),
      field(t("publish.labels"), labels, t("publish.labelshelp")),
      field(t("publish.inputs"), questions, t("publish.inputshelp")),
      h("div", { class: "field" }, h("span", { class: "label" }, t("publish.data")), zone, fileList,
        h("p", { class: "help" }, t("publish.datahelp")))),
    card(h("h2", {}, t("publish.how")),
      h("div", { class: "grid-2" },
        field(t("publish.reward"), reward, t("publish.rewardhelp")),
        field(t("publish.people"), people, t("publish.peoplehelp")),
        field(t("publish.perq"), perQ, t("publish.perqhelp")),
        field(t("publish.totaltime"), total, t("publish.totaltimehelp")),
        field(t("publish.strategy"), strategy, t("publish.strategyhelp")),
        field(t("publish.accept"), acceptMethod, t("publish.accepthelp"))),
      escrow,
      h("label", { class: "check" }, distributeNow, " ", t("publish.distributenow"))),
    errors, progress, h("div", { class: "actions" }, submit));
    root.append(pageHeader(t("nav.publish"), t("publish.subtitle")), form);
  },
};
