// The stats service's dashboard (daily calls and defects), inside the console once signed in.
import { t } from "../i18n.js";
import { h, pageHeader } from "../ui.js";

export default {
  title: "nav.dashboard",
  render(root) {
    root.append(pageHeader(t("nav.dashboard"), t("dashboard.subtitle")),
      h("iframe", { class: "dashboard-frame", src: "/api/data/dashboard", title: t("nav.dashboard") }));
  },
};
