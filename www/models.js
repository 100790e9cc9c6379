// The models: the shipped ones and those opened from disk, loaded in the compute worker; what the
// page says about a model (classes, resolution, test figures, provenance); and the legend, with
// each class's colour and visibility.
import { $, state, fmt } from "./page.js";
import { renderOverlay } from "./overlay_layer.js";

export const MODELS = [
  { id: "glands", label: "Glands (colon, GlaS)", file: "models/glands.histoseg" },
  { id: "nuclei", label: "Nuclei (MoNuSeg)", file: "models/nuclei.histoseg" },
];

// A model the user opened from disk or taught here: id "file:NAME" -> { bytes }.
export const userModels = new Map();

export async function loadModel(id) {
  if (state.models.has(id)) return state.models.get(id);
  const own = userModels.get(id);
  const entry = MODELS.find((m) => m.id === id);
  const loaded = await state.compute.call("model", own ? { id, bytes: own.bytes } : { id, url: new URL(entry.file, location.href).href });
  state.models.set(id, loaded);
  if (!state.styles.has(id)) {
    state.styles.set(id, { colors: loaded.manifest.classes.map((c) => [...c.color]), visible: loaded.manifest.classes.map(() => true) });
  }
  return loaded;
}

// A model opened from disk or taught in this page joins the list for this visit (as "NAME
// (FILE)"); the caller selects it. A model that does not load is not added.
export async function addUserModel(id, bytes, fileName) {
  userModels.set(id, { bytes });
  state.models.delete(id);
  state.styles.delete(id);
  let m;
  try {
    m = await loadModel(id);
  } catch (e) {
    userModels.delete(id);
    throw e;
  }
  offerModel(id, `${m.manifest.name} (${fileName})`);
  return m;
}

// A model in the list under `label`; a user's model (in `userModels`) loads when chosen.
export function offerModel(id, label) {
  const select = $("model");
  let option = [...select.options].find((o) => o.value === id);
  if (!option) {
    option = document.createElement("option");
    option.value = id;
    select.append(option);
  }
  option.textContent = label;
}

export function describeModel(id, m) {
  const info = $("model-info");
  const mf = m.manifest;
  info.replaceChildren();
  const p = document.createElement("p");
  p.textContent = `Classes: ${mf.classes.map((c) => c.name).join(", ")}. Works at ${mf.um_per_px} µm/px in ${mf.tile_size} px tiles; ${(m.bytes / 1e6).toFixed(2)} MB.`;
  info.append(p);
  const test = mf.metrics && mf.metrics.test;
  if (test && test.int8) {
    const t = document.createElement("p");
    t.className = "metrics";
    const q = test.int8;
    const parts = [`pixel Dice ${fmt(q.pixel_dice)}`];
    const o = q.objects || {};
    if (o.object_f1 != null) parts.push(`object F1 ${fmt(o.object_f1)}`);
    if (o.aji != null) parts.push(`AJI ${fmt(o.aji)}`);
    t.textContent = `Test set (${test.dataset}, ${test.images} images): ${parts.join(", ")}.`;
    info.append(t);
  }
  // files trained before weights were kept by the mean Dice over all classes carry the object classes' Dice
  const meanDice = mf.metrics && mf.metrics.validation_mean_dice;
  const objectDice = mf.metrics && mf.metrics.validation_pixel_dice;
  const validation = typeof meanDice === "number" ? meanDice : objectDice;
  if (!(test && test.int8) && typeof validation === "number") {
    const t = document.createElement("p");
    t.className = "metrics";
    const what = typeof meanDice === "number" ? "mean Dice over all classes, background included" : "mean pixel Dice";
    t.textContent = `Validation (held-out training images): ${what} ${fmt(validation)}.`;
    info.append(t);
  }
  if (mf.provenance) {
    const d = document.createElement("details");
    const sum = document.createElement("summary");
    sum.textContent = "Training data and command";
    const body = document.createElement("p");
    body.textContent = mf.provenance;
    d.append(sum, body);
    info.append(d);
  }
  if (!mf.trained) {
    const w = document.createElement("p");
    w.className = "untrained";
    w.textContent = "This model is UNTRAINED (random weights): its masks are not meaningful.";
    info.append(w);
  }
  if (!state.result) buildLegend(id, mf);
}

// An [r, g, b] colour as a colour input's "#rrggbb", and back.
export const hex = (c) => `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
export const unhex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));

// Per-class colour pickers and visibility toggles for the classes of `manifest`.
export function buildLegend(modelId, manifest) {
  const legend = $("legend");
  legend.replaceChildren();
  const style = state.styles.get(modelId);
  const boundary = manifest.postprocess?.boundary_class;
  manifest.classes.forEach((c, i) => {
    // background is never drawn; a boundary class only splits objects (its pixels join them)
    if (i === 0 || i === boundary) return;
    const li = document.createElement("li");
    const vis = document.createElement("input");
    vis.type = "checkbox"; vis.checked = style.visible[i]; vis.id = `class-visible-${i}`;
    vis.title = `Show ${c.name}`;
    vis.addEventListener("change", () => { style.visible[i] = vis.checked; renderOverlay(); });
    const col = document.createElement("input");
    col.type = "color"; col.value = hex(style.colors[i]); col.id = `class-color-${i}`;
    col.title = `Colour of ${c.name}`;
    col.addEventListener("input", () => { style.colors[i] = unhex(col.value); renderOverlay(); });
    const name = document.createElement("label");
    name.htmlFor = vis.id; name.textContent = c.name;
    li.append(vis, col, name);
    legend.append(li);
  });
}
