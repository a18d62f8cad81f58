// Requester: image datasets (document 000): create one with its labels, upload images, zips or
// VOC XML with a progress bar, see thumbnails with their boxes, export COCO/VOC/YOLO/CSV. 000 has no
// "list my datasets", so the datasets made here are remembered in this browser; Q&A datasets (001)
// are listed by the platform.
import { api, download, upload } from "../api.js";
import { colorOf } from "../boxes.js";
import { t } from "../i18n.js";
import { alertBox, busy, card, clear, dropZone, empty, errorText, field, h, input, pageHeader, progressBar, svg, table } from "../ui.js";

const STORAGE_KEY = "labelhive.datasets";
const TYPES = { 1: "classification", 2: "face", 3: "detection", 4: "segmentation" };
const remembered = () => JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
const remember = (list) => localStorage.setItem(STORAGE_KEY, JSON.stringify(list));

// Boxes of a Pascal VOC XML file, to draw on the thumbnails before (and after) the upload.
function vocBoxes(text) {
  const doc = new DOMParser().parseFromString(text, "application/xml");
  const value = (node, name) => Number(node.getElementsByTagName(name)[0]?.textContent || 0);
  return {
    filename: doc.getElementsByTagName("filename")[0]?.textContent || "",
    boxes: [...doc.getElementsByTagName("object")].map((object) => {
      const box = object.getElementsByTagName("bndbox")[0];
      return { label: object.getElementsByTagName("name")[0]?.textContent || "?", x: value(box, "xmin"), y: value(box, "ymin"),
        width: value(box, "xmax") - value(box, "xmin"), height: value(box, "ymax") - value(box, "ymin") };
    }),
  };
}

function thumbnail(file, boxes, labels) {
  const image = h("img", { src: URL.createObjectURL(file), alt: file.name, loading: "lazy" });
  const overlay = svg("svg", { class: "thumb-overlay" });
  image.addEventListener("load", () => {
    overlay.setAttribute("viewBox", `0 0 ${image.naturalWidth} ${image.naturalHeight}`);
    for (const box of boxes) overlay.append(svg("rect", { x: box.x, y: box.y, width: box.width, height: box.height, fill: "none",
      stroke: colorOf(labels, box.label), "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
  });
  return h("figure", { class: "thumb-card" }, h("div", { class: "thumb" }, image, overlay), h("figcaption", {}, file.name,
    boxes.length ? ` · ${boxes.length} ${t("datasets.boxes")}` : ""));
}

function datasetCard(dataset, onChange) {
  const progress = h("div", {});
  const thumbs = h("div", { class: "thumbs" });
  const errors = h("div", { class: "form-errors" });
  const boxed = dataset.data_type >= 3;
  const zone = dropZone(t(boxed ? "datasets.dropboxed" : "datasets.drop"), async (files) => {
    const images = files.filter((file) => /\.(jpe?g|png|bmp|gif|webp|zip)$/i.test(file.name));
    const xmls = files.filter((file) => /\.xml$/i.test(file.name));
    const boxesByName = {};
    for (const xml of xmls) {
      const parsed = vocBoxes(await xml.text());
      boxesByName[parsed.filename] = parsed.boxes;
    }
    const labels = [...new Set(Object.values(boxesByName).flat().map((box) => box.label))];
    clear(thumbs, images.filter((f) => !f.name.endsWith(".zip")).slice(0, 60).map((file) => thumbnail(file, boxesByName[file.name] || [], labels)));
    const form = new FormData();
    form.append("status", "default");
    for (const file of images) form.append("upload_image_site", file, file.name);
    for (const xml of xmls) form.append("label_file", xml, xml.name);
    const bar = progressBar(0, t("publish.uploading"));
    clear(progress, bar);
    errors.replaceChildren();
    try {
      await upload(`/data_module/${boxed ? "upload_images" : "upload_image"}/${encodeURIComponent(dataset.name)}`, form, (fraction) => {
        bar.firstChild.style.width = `${Math.round(fraction * 100)}%`;
      });
      dataset.images = (dataset.images || 0) + images.length;
      onChange();
      clear(progress, alertBox(t("datasets.uploaded", { n: images.length }), "success"));
    } catch (error) {
      clear(progress, alertBox(errorText(error)));
    }
  }, { accept: "image/*,.zip,.xml" });
  const exports = ["coco", "voc", "yolo", "csv"].map((format) => h("button", { type: "button", class: "btn btn-sm",
    onclick: (event) => busy(event.currentTarget, () => download(`/dataset/export/${dataset.id}`, { format }, `${dataset.name}.${format}`), errors) },
  format.toUpperCase()));
  return card(h("div", { class: "task-head" }, h("h3", {}, dataset.name, " ", h("span", { class: "muted small" }, `#${dataset.id}`)),
    h("span", { class: "badge badge-info" }, t(`datasets.type.${TYPES[dataset.data_type]}`))),
  h("p", { class: "muted" }, t("datasets.labels", { labels: dataset.labels || "-" })),
  zone, progress, thumbs, h("div", { class: "actions" }, h("span", { class: "muted" }, t("datasets.export")), exports), errors);
}

export default {
  title: "nav.datasets",
  async render(root) {
    const list = h("div", { class: "cards cards-wide", id: "datasets" });
    const name = input({ name: "name", required: true });
    const type = h("select", { class: "input", name: "data_type" }, Object.entries(TYPES).map(([value, key]) => h("option", { value }, t(`datasets.type.${key}`))));
    const labels = input({ name: "label_type", placeholder: "1:cat,2:dog" });
    const desc = input({ name: "desc" });
    const errors = h("div", { class: "form-errors" });
    const create = h("button", { type: "submit", class: "btn btn-primary" }, t("datasets.create"));
    const refresh = () => {
      const datasets = remembered();
      clear(list, datasets.length ? datasets.map((dataset) => datasetCard(dataset, () => remember(datasets))) : empty(t("datasets.none")));
    };
    const qa = h("div", {});
    root.append(pageHeader(t("nav.datasets"), t("datasets.subtitle")),
      card(h("h2", {}, t("datasets.new")), h("form", { class: "grid-2", onsubmit: (event) => {
        event.preventDefault();
        busy(create, async () => {
          const form = new FormData();
          form.append("name", name.value.trim());
          form.append("data_type", type.value);
          form.append("desc", desc.value);
          form.append("label_type", labels.value.trim());
          const answer = await api("POST", "/data_module/create_dataset", { form });
          remember([{ id: Number(answer.dataset_id), name: name.value.trim(), data_type: Number(type.value), labels: labels.value.trim() }, ...remembered()]);
          name.value = "";
          refresh();
        }, errors);
      } }, field(t("datasets.name"), name), field(t("datasets.kind"), type), field(t("datasets.labelsfield"), labels, t("datasets.labelshelp")),
      field(t("datasets.desc"), desc), errors, h("div", { class: "actions" }, create))),
      list, card(h("h2", {}, t("datasets.qa")), qa));
    refresh();
    try {
      const answer = await api("GET", "/dataset/list");
      const rows = answer.response || [];
      clear(qa, Array.isArray(rows) && rows.length ? table([t("datasets.name"), t("datasets.kind"), ""], rows.map((row) => h("tr", {},
        h("td", {}, row.dataset_name), h("td", {}, row.dataset_task_type || "-"),
        h("td", {}, h("button", { type: "button", class: "btn btn-sm", onclick: (event) => busy(event.currentTarget,
          () => download(`/dataset/export/${row.dataset_id}`, { format: "jsonl" }, `${row.dataset_name}.jsonl`)) }, "JSONL"))))) : empty(t("datasets.noqa")));
    } catch (error) {
      clear(qa, alertBox(errorText(error)));
    }
  },
};
