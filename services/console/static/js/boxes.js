// The bounding-box editor: draw boxes with the mouse, move and resize them, delete, pick their label
// (number keys or the list), undo; zoom with the wheel or the buttons, pan by dragging with Space held
// (or the middle button). Boxes are kept in image pixels: {label, x, y, width, height}.
import { t } from "./i18n.js";
import { h, svg } from "./ui.js";

const PALETTE = ["#4f46e5", "#e11d48", "#059669", "#d97706", "#0891b2", "#7c3aed", "#db2777", "#65a30d", "#2563eb"];
const MIN_SIZE = 3;
const HISTORY = 100;

export function colorOf(labels, label) {
  const index = labels.indexOf(label);
  return PALETTE[(index < 0 ? labels.length : index) % PALETTE.length];
}

export class BoxEditor {
  constructor(labels, { onChange = () => {} } = {}) {
    this.labels = labels;
    this.onChange = onChange;
    this.boxes = [];
    this.history = [];
    this.selected = -1;
    this.currentLabel = labels[0] || "";
    this.readOnly = false;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.panning = false;
    this.spaceDown = false;
    this.image = h("img", { class: "box-image", alt: "", draggable: false });
    this.overlay = svg("svg", { class: "box-overlay" });
    this.stage = h("div", { class: "box-stage" }, this.image, this.overlay);
    this.viewport = h("div", { class: "box-viewport", tabindex: "0", "aria-label": t("work.canvas") }, this.stage);
    this.list = h("ol", { class: "box-list", "aria-label": t("work.boxes") });
    const zoom = (factor) => () => this.zoomAt(factor, this.viewport.clientWidth / 2, this.viewport.clientHeight / 2);
    this.toolbar = h("div", { class: "box-toolbar" },
      h("button", { type: "button", class: "btn btn-sm", onclick: zoom(1.25), "aria-label": t("work.zoomin") }, "+"),
      h("button", { type: "button", class: "btn btn-sm", onclick: zoom(0.8), "aria-label": t("work.zoomout") }, "−"),
      h("button", { type: "button", class: "btn btn-sm", onclick: () => this.fit() }, t("work.fit")),
      h("span", { class: "muted small" }, t("work.boxhelp")));
    this.element = h("div", { class: "box-editor" }, this.toolbar, this.viewport);
    this.viewport.addEventListener("pointerdown", (event) => this.pointerDown(event));
    this.viewport.addEventListener("wheel", (event) => {
      event.preventDefault();
      const rect = this.viewport.getBoundingClientRect();
      this.zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - rect.left, event.clientY - rect.top);
    }, { passive: false });
    this.keyUp = (event) => { if (event.code === "Space") this.spaceDown = false; };
    window.addEventListener("keyup", this.keyUp);
    this.resizeObserver = new ResizeObserver(() => { if (this.width) this.fit(); });
    this.resizeObserver.observe(this.viewport);
  }

  destroy() {
    window.removeEventListener("keyup", this.keyUp);
    this.resizeObserver.disconnect();
  }

  // Shows an image (already loaded: the workspace prefetches) with the given boxes.
  load(image, boxes = [], readOnly = false) {
    this.image.src = image.src;
    this.width = image.naturalWidth;
    this.height = image.naturalHeight;
    this.image.width = this.width;
    this.image.height = this.height;
    this.overlay.setAttribute("viewBox", `0 0 ${this.width} ${this.height}`);
    this.overlay.setAttribute("width", this.width);
    this.overlay.setAttribute("height", this.height);
    this.boxes = boxes.map((box) => ({ ...box }));
    this.history = [];
    this.selected = -1;
    this.readOnly = readOnly;
    this.fit();
    this.draw();
  }

  result() {
    const round = (value) => Math.round(value * 10) / 10;
    return { boxes: this.boxes.map((b) => ({ label: b.label, x: round(b.x), y: round(b.y), width: round(b.width), height: round(b.height) })),
      image_width: this.width, image_height: this.height };
  }

  fit() {
    const width = this.viewport.clientWidth || 800;
    const height = this.viewport.clientHeight || 500;
    this.scale = Math.min(width / this.width, height / this.height) || 1;
    this.tx = (width - this.width * this.scale) / 2;
    this.ty = (height - this.height * this.scale) / 2;
    this.applyTransform();
  }

  zoomAt(factor, x, y) {
    const scale = Math.min(40, Math.max(0.05, this.scale * factor));
    factor = scale / this.scale;
    this.tx = x - (x - this.tx) * factor;
    this.ty = y - (y - this.ty) * factor;
    this.scale = scale;
    this.applyTransform();
    this.draw();
  }

  applyTransform() {
    this.stage.style.transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
  }

  // Client coordinates -> image pixels.
  toImage(event) {
    const rect = this.viewport.getBoundingClientRect();
    return { x: (event.clientX - rect.left - this.tx) / this.scale, y: (event.clientY - rect.top - this.ty) / this.scale };
  }

  remember() {
    this.history.push(JSON.stringify({ boxes: this.boxes, selected: this.selected }));
    if (this.history.length > HISTORY) this.history.shift();
  }

  changed() {
    this.draw();
    this.onChange(this.boxes);
  }

  undo() {
    const last = this.history.pop();
    if (!last) return false;
    const state = JSON.parse(last);
    this.boxes = state.boxes;
    this.selected = Math.min(state.selected, this.boxes.length - 1);
    this.changed();
    return true;
  }

  // Number key i: the selected box gets label i, and so do the boxes drawn next.
  setLabel(index) {
    const label = this.labels[index];
    if (label === undefined) return;
    this.currentLabel = label;
    if (!this.readOnly && this.selected >= 0 && this.boxes[this.selected].label !== label) {
      this.remember();
      this.boxes[this.selected].label = label;
    }
    this.changed();
  }

  select(index) {
    this.selected = index;
    this.draw();
  }

  deleteSelected() {
    if (this.readOnly || this.selected < 0) return false;
    this.remember();
    this.boxes.splice(this.selected, 1);
    this.selected = Math.min(this.selected, this.boxes.length - 1);
    this.changed();
    return true;
  }

  keyDown(event) {
    if (event.code === "Space") { this.spaceDown = true; event.preventDefault(); return true; }
    if ((event.key === "Delete" || event.key === "Backspace") && this.deleteSelected()) return true;
    if (event.key === "Tab" && this.boxes.length && document.activeElement === this.viewport) {
      event.preventDefault();
      this.select((this.selected + (event.shiftKey ? -1 : 1) + this.boxes.length) % this.boxes.length);
      return true;
    }
    return false;
  }

  pointerDown(event) {
    this.viewport.focus({ preventScroll: true });
    const start = this.toImage(event);
    const startClient = { x: event.clientX, y: event.clientY };
    const target = event.target;
    let mode;
    let index = -1;
    let original = null;
    if (event.button === 1 || this.spaceDown) {
      mode = "pan";
      original = { tx: this.tx, ty: this.ty };
    } else if (event.button !== 0 || this.readOnly) {
      return;
    } else if (target.dataset && target.dataset.handle) {
      mode = "resize";
      index = Number(target.dataset.index);
      original = { ...this.boxes[index], corner: target.dataset.handle };
    } else if (target.dataset && target.dataset.index !== undefined) {
      mode = "move";
      index = Number(target.dataset.index);
      original = { ...this.boxes[index] };
    } else {
      mode = "draw";
    }
    event.preventDefault();
    this.viewport.setPointerCapture(event.pointerId);
    let remembered = false;
    const rememberOnce = () => { if (!remembered) { this.remember(); remembered = true; } };
    if (mode === "move" || mode === "resize") this.select(index);
    if (mode === "draw") this.select(-1);

    const move = (moveEvent) => {
      const point = this.toImage(moveEvent);
      const clamp = (value, max) => Math.max(0, Math.min(max, value));
      if (mode === "pan") {
        this.tx = original.tx + moveEvent.clientX - startClient.x;
        this.ty = original.ty + moveEvent.clientY - startClient.y;
        this.applyTransform();
        return;
      }
      if (mode === "draw") {
        const x1 = clamp(Math.min(start.x, point.x), this.width);
        const y1 = clamp(Math.min(start.y, point.y), this.height);
        const x2 = clamp(Math.max(start.x, point.x), this.width);
        const y2 = clamp(Math.max(start.y, point.y), this.height);
        if (index < 0) {
          if (Math.abs(point.x - start.x) * this.scale < MIN_SIZE && Math.abs(point.y - start.y) * this.scale < MIN_SIZE) return;
          rememberOnce();
          this.boxes.push({ label: this.currentLabel, x: x1, y: y1, width: 0, height: 0 });
          index = this.boxes.length - 1;
          this.selected = index;
        }
        Object.assign(this.boxes[index], { x: x1, y: y1, width: x2 - x1, height: y2 - y1 });
      } else if (mode === "move") {
        rememberOnce();
        const box = this.boxes[index];
        box.x = clamp(original.x + point.x - start.x, this.width - box.width);
        box.y = clamp(original.y + point.y - start.y, this.height - box.height);
      } else if (mode === "resize") {
        rememberOnce();
        let left = original.x;
        let top = original.y;
        let right = original.x + original.width;
        let bottom = original.y + original.height;
        if (original.corner.includes("w")) left = clamp(point.x, this.width);
        if (original.corner.includes("e")) right = clamp(point.x, this.width);
        if (original.corner.includes("n")) top = clamp(point.y, this.height);
        if (original.corner.includes("s")) bottom = clamp(point.y, this.height);
        Object.assign(this.boxes[index], { x: Math.min(left, right), y: Math.min(top, bottom),
          width: Math.abs(right - left), height: Math.abs(bottom - top) });
      }
      this.draw();
    };
    const up = () => {
      this.viewport.removeEventListener("pointermove", move);
      this.viewport.removeEventListener("pointerup", up);
      this.viewport.removeEventListener("pointercancel", up);
      if (mode === "draw" && index >= 0) {
        const box = this.boxes[index];
        if (box.width * this.scale < MIN_SIZE || box.height * this.scale < MIN_SIZE) {
          this.boxes.splice(index, 1);
          this.history.pop();
          this.selected = -1;
        }
      }
      if (mode !== "pan") this.changed();
    };
    this.viewport.addEventListener("pointermove", move);
    this.viewport.addEventListener("pointerup", up);
    this.viewport.addEventListener("pointercancel", up);
  }

  draw() {
    const handle = 7 / this.scale;
    const children = [];
    this.boxes.forEach((box, index) => {
      const color = colorOf(this.labels, box.label);
      const selected = index === this.selected;
      const group = svg("g", { class: `box${selected ? " selected" : ""}` });
      group.append(svg("rect", { x: box.x, y: box.y, width: box.width, height: box.height, stroke: color,
        fill: selected ? `${color}33` : `${color}14`, "stroke-width": selected ? 3 : 2, "vector-effect": "non-scaling-stroke",
        "data-index": index }));
      const caption = svg("text", { x: box.x + 2 / this.scale, y: Math.max(12 / this.scale, box.y - 4 / this.scale),
        fill: color, "font-size": 13 / this.scale, "font-weight": "600" });
      caption.textContent = `${index + 1}. ${box.label}`;
      group.append(caption);
      if (selected && !this.readOnly) {
        for (const [corner, x, y] of [["nw", box.x, box.y], ["ne", box.x + box.width, box.y],
          ["sw", box.x, box.y + box.height], ["se", box.x + box.width, box.y + box.height]]) {
          group.append(svg("rect", { x: x - handle / 2, y: y - handle / 2, width: handle, height: handle, fill: "#fff",
            stroke: color, "vector-effect": "non-scaling-stroke", "data-handle": corner, "data-index": index,
            class: `handle handle-${corner}` }));
        }
      }
      children.push(group);
    });
    this.overlay.replaceChildren(...children);
    this.drawList();
  }

  drawList() {
    this.list.replaceChildren(...this.boxes.map((box, index) => {
      const select = h("select", { class: "input input-sm", disabled: this.readOnly, "aria-label": t("work.boxlabel", { n: index + 1 }),
        onchange: () => { this.remember(); box.label = select.value; this.changed(); } },
      this.labels.map((label, i) => h("option", { value: label, selected: label === box.label }, `${i + 1}. ${label}`)));
      return h("li", { class: index === this.selected ? "selected" : "", onclick: () => this.select(index) },
        h("span", { class: "swatch", style: { background: colorOf(this.labels, box.label) } }),
        h("span", { class: "box-size" }, `${Math.round(box.width)}×${Math.round(box.height)}`), select,
        !this.readOnly && h("button", { type: "button", class: "btn btn-sm btn-ghost", "aria-label": t("work.deletebox", { n: index + 1 }),
          onclick: (event) => { event.stopPropagation(); this.select(index); this.deleteSelected(); } }, "✕"));
    }));
  }
}
