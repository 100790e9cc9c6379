// "Train your own": the user names classes, paints strokes of each on the image (brush, eraser,
// undo, at any zoom), and after each stroke a light head trains on the frozen features of the
// chosen model's UNet, in the compute worker, and the view shows its prediction (or where it is
// unsure). The taught model downloads as a normal .histoseg file, is kept in this browser's
// storage, and joins the model list, so the view or the whole image segments with it and every
// export works. Strokes are level-0 brush paths (never pixels); they export as GeoJSON that QuPath
// opens and `histoseg train --strokes` replays, and import again to go on.
import { $, state, report, showError, clearError, notice, message, fmt } from "./page.js";
import { download } from "./exports.js";
import { addUserModel, describeModel, offerModel, userModels, hex, unhex } from "./models.js";
import { renderOverlay } from "./overlay_layer.js";

const t = {
  open: false,
  base: null,        // the model whose UNet gives the features
  classes: [{ name: "background", color: [150, 150, 150] }, { name: "object", color: [0, 200, 83] }],
  current: 1,        // the class painted
  strokes: [],       // { class: index or null (eraser), radius (level-0 px), points: [[x, y]] }
  drawing: null,     // the stroke under the pointer
  busy: false,       // an update is running in the worker
  viewMoved: false,  // the view moved while busy: preview it when free
  again: false,      // strokes changed while it ran
  trained: false,    // the head has been trained at least once
  preview: null,     // the last preview from the worker
  strokeEndedAt: 0,
  previewTimer: 0,
  layer: null,       // the canvas the strokes are drawn on before they go over the view
};

const status = (text) => { $("teach-status").textContent = text; };
// a head needs strokes of two classes
const paintedClasses = () => new Set(t.strokes.filter((s) => s.class !== null).map((s) => s.class)).size;

// The strokes as GeoJSON (src/strokes.rs reads it: LineStrings with QuPath's `classification`,
// the brush under `histoseg`, the class list on the collection).
function strokesGeojson() {
  return JSON.stringify({
    type: "FeatureCollection",
    histoseg: { kind: "strokes", image: state.image?.name ?? "", classes: t.classes, updates: [] },
    features: t.strokes.map((s) => ({
      type: "Feature",
      geometry: { type: "LineString", coordinates: s.points.length === 1 ? [s.points[0], s.points[0]] : s.points },
      properties: {
        objectType: "annotation",
        histoseg: { brush_radius_px: s.radius, erase: s.class === null },
        ...(s.class === null ? {} : { classification: { name: t.classes[s.class].name, color: t.classes[s.class].color } }),
      },
    })),
  });
}

// The painter the viewer calls (viewer.js setPainter): level-0 points in, strokes drawn over the view.
const painter = {
  down(p) {
    const radius = Number($("teach-size").value) / 2 / state.viewer.view.scale;
    const erase = $("teach-eraser").checked;
    t.drawing = { class: erase ? null : t.current, radius: Math.round(radius * 10) / 10, points: [[p.x, p.y]] };
  },
  move(p) {
    const s = t.drawing;
    if (!s) return;
    const [x, y] = s.points.at(-1);
    // points closer than a quarter of the brush add nothing to the path
    if (Math.hypot(p.x - x, p.y - y) >= s.radius / 4) s.points.push([p.x, p.y]);
  },
  up(p) {
    const s = t.drawing;
    t.drawing = null;
    if (!s) return;
    this.move(p);
    s.points = s.points.map(([x, y]) => [Math.round(x * 10) / 10, Math.round(y * 10) / 10]);
    t.strokes.push(s);
    t.strokeEndedAt = performance.now();
    report("teach", { kind: "stroke", strokes: t.strokes.length });
    changed();
  },
  draw(ctx) {
    const list = t.drawing ? [...t.strokes, t.drawing] : t.strokes;
    if (!list.length) return;
    // drawn on a layer of the view's size, so an eraser stroke clears the strokes under it only
    const canvas = ctx.canvas;
    if (!t.layer || t.layer.width !== canvas.width || t.layer.height !== canvas.height) {
      t.layer = document.createElement("canvas");
      t.layer.width = canvas.width; t.layer.height = canvas.height;
    }
    const g = t.layer.getContext("2d");
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.setTransform(ctx.getTransform());
    g.lineCap = "round"; g.lineJoin = "round";
    for (const st of list) {
      g.globalCompositeOperation = st.class === null ? "destination-out" : "source-over";
      g.strokeStyle = g.fillStyle = st.class === null ? "#000" : hex(t.classes[st.class].color);
      g.lineWidth = 2 * st.radius;
      g.beginPath();
      g.moveTo(...st.points[0]);
      for (const q of st.points.slice(1)) g.lineTo(...q);
      if (st.points.length === 1) g.lineTo(...st.points[0]);
      g.stroke();
    }
    ctx.save();
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.globalAlpha = 0.75;
    ctx.drawImage(t.layer, 0, 0);
    ctx.restore();
  },
};

// After every change of strokes or classes: train and preview, one update at a time (strokes
// painted meanwhile are taken by the next).
async function changed() {
  $("teach-undo").disabled = t.strokes.length === 0;
  state.viewer.redraw();
  if (t.busy) { t.again = true; return; }
  if (!t.strokes.some((s) => s.class !== null)) { status("Paint a stroke of each class."); return; }
  t.busy = true;
  try {
    do {
      t.again = false;
      const train = paintedClasses() >= 2;
      const endedAt = t.strokeEndedAt;
      status(train ? "Training…" : "Computing features…");
      t.viewMoved = false; // this update previews the view as it is now
      const r = await state.compute.call("teachUpdate", { geojson: strokesGeojson(), view: state.viewer.visibleRegion(), train });
      if (!train) { status(`Now paint the other class${t.classes.length > 2 ? "es" : ""}: the model learns from two or more.`); continue; }
      t.trained = true;
      const afterStrokeMs = performance.now() - endedAt;
      showPreview(r.preview);
      status(`${t.strokes.length} stroke${t.strokes.length > 1 ? "s" : ""}; updated ${fmt(afterStrokeMs / 1000, 1)} s after the last (features ${fmt(r.featuresMs / 1000, 1)} s, training ${fmt(r.trainMs / 1000, 1)} s, preview ${fmt(r.previewMs / 1000, 1)} s, ${r.backend === "webgpu" ? "GPU" : "CPU"}); loss ${fmt(r.loss, 3)}.`);
      report("teach", { kind: "preview", strokes: t.strokes.length, afterStrokeMs, featuresMs: r.featuresMs, trainMs: r.trainMs, previewMs: r.previewMs, loss: r.loss, backend: r.backend, preview: r.preview, classes: t.classes.length });
    } while (t.again);
  } catch (e) {
    showError(`Training failed: ${message(e)}. Your strokes are kept.`);
  } finally {
    t.busy = false;
    $("teach-save").disabled = $("teach-export").disabled = !t.trained;
    previewIfMoved();
  }
}

// A view that moved while the worker was busy gets its preview once it is free.
function previewIfMoved() {
  if (t.viewMoved) { t.viewMoved = false; teachViewChanged(); }
}

// The preview on the view: classes in their colours (background clear), or the uncertainty.
function showPreview(p) {
  t.preview = p;
  const c = document.createElement("canvas");
  c.width = p.width; c.height = p.height;
  const img = new ImageData(p.width, p.height);
  const unsure = $("teach-unsure").checked;
  for (let i = 0; i < p.labels.length; i++) {
    const o = i * 4;
    if (unsure) {
      img.data.set([255, 0, 200, p.uncertainty[i]], o);
    } else if (p.labels[i] > 0) {
      img.data.set([...t.classes[p.labels[i]].color, 255], o);
    }
  }
  c.getContext("2d").putImageData(img, 0, 0);
  state.viewer.setOverlay({ canvas: c, x: p.x * p.scale, y: p.y * p.scale, width: p.width * p.scale, height: p.height * p.scale });
}

// A pan or zoom shows the prediction there (once the view has settled).
export function teachViewChanged() {
  if (!t.open || !t.trained) return;
  clearTimeout(t.previewTimer);
  t.previewTimer = setTimeout(async () => {
    if (t.busy) { t.viewMoved = true; return; }
    t.busy = true;
    try {
      const r = await state.compute.call("teachPreview", { view: state.viewer.visibleRegion() });
      showPreview(r.preview);
      report("teach", { kind: "view-preview", preview: r.preview });
    } catch (e) {
      showError(`The preview failed: ${message(e)}`);
    } finally {
      t.busy = false;
      previewIfMoved();
    }
  }, 400);
}

function renderClasses() {
  const list = $("teach-classes");
  list.replaceChildren();
  t.classes.forEach((c, i) => {
    const li = document.createElement("li");
    const pick = document.createElement("input");
    pick.type = "radio"; pick.name = "teach-class"; pick.checked = i === t.current; pick.id = `teach-class-${i}`;
    pick.addEventListener("change", () => { t.current = i; $("teach-eraser").checked = false; });
    const col = document.createElement("input");
    col.type = "color"; col.value = hex(c.color); col.title = `Colour of ${c.name}`;
    col.addEventListener("input", () => { c.color = unhex(col.value); state.viewer.redraw(); if (t.preview) showPreview(t.preview); });
    pick.setAttribute("aria-label", `Paint ${c.name}`);
    // the name can be changed (a new name starts a new head)
    const name = document.createElement("input");
    name.type = "text"; name.size = 12; name.value = c.name; name.id = `teach-class-name-${i}`; name.setAttribute("aria-label", "Class name");
    name.addEventListener("change", () => {
      const v = name.value.trim();
      if (!v || t.classes.some((k, j) => j !== i && k.name === v)) { name.value = c.name; showError(v ? `There is already a class '${v}'.` : "A class needs a name."); return; }
      c.name = v;
      pick.setAttribute("aria-label", `Paint ${v}`);
      if (t.strokes.length) changed();
    });
    li.append(pick, col, name);
    list.append(li);
  });
}

// Opens the mode on the open image with the selected model's UNet.
async function start() {
  clearError();
  if (!state.image) { showError("Open an image first, then paint on it."); return; }
  const base = $("model").value;
  try {
    const umPerPx = Number($("umpp").value) || state.image.umPerPx || undefined;
    const r = await state.compute.call("teachStart", { modelId: base, umPerPx });
    t.base = base;
    t.open = true;
    t.trained = false;
    t.preview = null;
    $("teach-tools").hidden = false;
    $("teach-start").hidden = true;
    $("teach-stop").hidden = false;
    state.viewer.setPainter(painter);
    renderClasses();
    status(`Paint strokes of each class on the image (features of ${state.models.get(base)?.manifest.name ?? base}'s UNet, on the ${r.backend === "webgpu" ? "GPU" : "CPU"}). Right-drag, two fingers or the arrow keys pan; the wheel zooms; Ctrl+Z undoes, E toggles the eraser.`);
    report("teach", { kind: "open", backend: r.backend });
    if (t.strokes.length) changed();
  } catch (e) {
    showError(`"Train your own" could not start: ${message(e)}`);
  }
}

// Leaves the mode: painting stops and the segmentation result (if any) is shown again.
async function stop() {
  t.open = false;
  state.viewer.setPainter(null);
  $("teach-tools").hidden = true;
  $("teach-start").hidden = false;
  $("teach-stop").hidden = true;
  await state.compute.call("teachStop").catch(() => {});
  if (state.result) renderOverlay(); else state.viewer.setOverlay(null);
}

// A new image: its strokes would not fit, so the mode closes and they go.
export function teachImageOpened() {
  t.strokes = [];
  t.trained = false;
  if (t.open) stop();
}

async function save() {
  const name = $("teach-name").value.trim() || "my model";
  const file = `${name}.histoseg`;
  const id = `file:${file}`;
  try {
    const { bytes, kept } = await state.compute.call("teachSave", { name, id });
    download(bytes, file, "application/octet-stream");
    const m = await addUserModel(id, bytes, file);
    $("model").value = id;
    describeModel(id, m);
    notice(`Saved ${file}${kept ? "; it is kept in this browser for next time and" : ";"} it is selected above: segment the view or the whole image with it.`);
    report("teach", { kind: "saved", id, bytes: bytes.length, kept });
  } catch (e) {
    showError(`The model could not be saved: ${message(e)}`);
  }
}

async function exportStrokes() {
  try {
    const text = await state.compute.call("teachStrokes");
    download(text, `${(state.image?.name ?? "image").replace(/\.[^.]+$/, "")}.strokes.geojson`, "application/geo+json");
  } catch (e) {
    showError(`The strokes could not be exported: ${message(e)}`);
  }
}

// Strokes from a file (ours, or QuPath's line annotations): the worker reads and checks them, and
// they replace those painted.
async function importStrokes(file) {
  clearError();
  try {
    const text = await state.compute.call("strokesFromGeojson", { text: await file.text() });
    const v = JSON.parse(text);
    t.classes = v.histoseg.classes.map((c) => ({ name: c.name, color: c.color }));
    const index = new Map(t.classes.map((c, i) => [c.name, i]));
    t.strokes = v.features.map((f) => ({
      class: f.properties.histoseg.erase ? null : index.get(f.properties.classification.name),
      radius: f.properties.histoseg.brush_radius_px,
      points: f.geometry.coordinates,
    }));
    t.current = Math.min(1, t.classes.length - 1);
    renderClasses();
    report("teach", { kind: "imported", strokes: t.strokes.length });
    changed();
  } catch (e) {
    showError(`Cannot import ${file.name}: ${message(e)}. The strokes painted are kept.`);
  }
}

function addClass() {
  const name = $("teach-new-name").value.trim();
  if (!name) { showError("Name the new class first."); return; }
  if (t.classes.some((c) => c.name === name)) { showError(`There is already a class '${name}'.`); return; }
  t.classes.push({ name, color: unhex($("teach-new-color").value) });
  t.current = t.classes.length - 1;
  $("teach-new-name").value = "";
  renderClasses();
  if (t.strokes.length) changed();
}

// Models taught on an earlier visit come back into the model list (each loads when chosen).
export async function restoreTaughtModels() {
  try {
    for (const m of await state.compute.call("keptModels")) {
      userModels.set(m.id, { bytes: m.bytes });
      offerModel(m.id, `${m.name} (${m.name}.histoseg, kept in this browser)`);
    }
  } catch (e) {
    console.warn(`kept models could not be read: ${message(e)}`);
  }
}

export function bindTeach() {
  $("teach-start").addEventListener("click", start);
  $("teach-stop").addEventListener("click", stop);
  $("teach-add").addEventListener("click", addClass);
  const undo = () => { t.strokes.pop(); changed(); };
  $("teach-undo").addEventListener("click", undo);
  $("teach-unsure").addEventListener("change", () => { if (t.preview) showPreview(t.preview); });
  $("teach-save").addEventListener("click", save);
  $("teach-export").addEventListener("click", exportStrokes);
  $("teach-import").addEventListener("change", async (ev) => {
    const f = ev.target.files[0];
    ev.target.value = "";
    if (f) await importStrokes(f);
  });
  addEventListener("keydown", (ev) => {
    if (!t.open || (ev.target.closest && ev.target.closest("input, select, textarea"))) return;
    if ((ev.ctrlKey || ev.metaKey) && ev.key === "z") { ev.preventDefault(); undo(); }
    if (ev.key === "e" || ev.key === "E") $("teach-eraser").checked = !$("teach-eraser").checked;
  });
}
