// AI: steel-surface defect detection (document 004): drop photos, see the result images, labels,
// defect counts and confidence.
import { upload } from "../api.js";
import { t } from "../i18n.js";
import { alertBox, badge, card, clear, dropZone, errorText, h, pageHeader, progressBar } from "../ui.js";

export default {
  title: "nav.defect",
  render(root) {
    const results = h("div", { class: "defects", id: "defect-results" });
    const zone = dropZone(t("defect.drop"), async (files) => {
      const form = new FormData();
      for (const file of files) form.append("images", file, file.name);
      const bar = progressBar(0);
      clear(results, bar);
      try {
        const { body } = await upload("/api/detect", form, (fraction) => { bar.firstChild.style.width = `${Math.round(fraction * 100)}%`; });
        clear(results, body.map((item) => card(
          h("img", { class: "defect-image", src: `data:image/jpeg;base64,${item.result_image}`, alt: t("defect.result", { name: item.name }) }),
          h("h3", {}, item.name),
          h("p", {}, t("defect.count", { n: item.defect_count }), " · ", t("defect.confidence", { n: Number(item.dice).toFixed(3) }),
            " · ", t("defect.seconds", { n: Number(item.processing_time).toFixed(2) })),
          h("div", { class: "badges" }, item.labels.length ? item.labels.map((label) => badge(t(`defect.label.${label}`), "warning"))
            : badge(t("defect.none"), "success")))));
      } catch (error) {
        clear(results, alertBox(errorText(error)));
      }
    });
    root.append(pageHeader(t("nav.defect"), t("defect.subtitle")), card(zone), results);
  },
};
