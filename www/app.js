// The page's controls: opening files, choosing the model, starting and cancelling a segmentation
// (progress, ETA), overlay controls and downloads. The page itself never decodes or infers: the
// wasm module runs in two workers (worker.js), one for the viewer's display tiles and one that
// segments and exports, reached through worker_client.js, so the page keeps drawing and
// answering input throughout. The pan/zoom view is viewer.js, the downloads exports.js. Nothing
// is sent anywhere: the only requests are for this page's own files.
import { SlideViewer } from "./viewer.js";
import { WorkerClient } from "./worker_client.js";
import { download, exportName } from "./exports.js";

const MODELS = [
  { id: "glands", label: "Glands (colon, GlaS)", file: "models/glands.histoseg" },
  { id: "nuclei", label: "Nuclei (MoNuSeg)", file: "models/nuclei.histoseg" },
];
const SAMPLES = {
  // no colon slide with a licence that lets us ship it was found in a package registry
  glands: {
    file: "samples/cmu-small-region.svs", model: "glands",
    domain: "This sample is skin, not colon: the glands model learnt colon glands (GlaS), so what it marks here lies outside what it was trained for. It shows the viewer at work, not a result to trust.",
  },
  // the PNG records no resolution; its nuclei put it at about 40x
  nuclei: { file: "samples/he-1000x1000.png", model: "nuclei", umPerPx: 0.25 },
};

const $ = (id) => document.getElementById(id);
const state = {
  compute: null,      // WorkerClient: models, segmentation, exports
  display: null,      // WorkerClient: the viewer's tiles
  file: null,         // the open File or Blob (sent to a worker again if it must reopen it)
  image: null,        // { name, width, height, format, umPerPx, umSource, levels, openMs, ... }
  models: new Map(),  // id -> { manifest, backend, bytes, fetchMs, initMs, adapter }
  styles: new Map(),  // model id -> { colors: [[r,g,b]], visible: [bool] }
  running: null,      // { cancelled, finished: Promise }
  opening: null,      // a Promise while a new image opens: true if it opened
  result: null,       // { modelId, manifest, name, x, y, width, height }
  viewer: null,
};
// Read by the browser tests and handy in the console.
window.histoseg = {
  status: "starting", lastResult: null, errors: [], notices: [], image: null, opened: 0, cancelled: [], drawn: [], overlays: 0, updateReady: false, restored: [], restoreChecks: 0, rowsDrawn: 0,
  kept: () => state.compute.call("kept"),
  labels: async () => (state.result ? state.compute.call("labels") : null),
  geojson: async () => (state.result ? state.compute.call("export", { kind: "geojson" }) : null),
  // the wasm linear memory of each worker, in bytes
  wasmMemory: async () => ({ compute: await state.compute.call("memory"), display: await state.display.call("memory") }),
  viewer: () => state.viewer,
};

function setStatus(s) { window.histoseg.status = s; document.body.dataset.status = s; }

function showError(msg) {
  const el = $("error");
  el.textContent = msg;
  el.hidden = false;
  window.histoseg.errors.push(msg);
}
function clearError() { $("error").hidden = true; }
function notice(msg) {
  const el = $("notice");
  el.textContent = msg;
  el.hidden = false;
  window.histoseg.notices.push(msg);
}
const message = (e) => (e && e.message) || String(e);

function setStats(entries) {
  const dl = $("stats");
  dl.replaceChildren();
  for (const [k, v] of entries) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v; dd.dataset.key = k;
    dl.append(dt, dd);
  }
}

// The worker's own messages: progress of the running segmentation, and notices (the backend chosen,
// the GPU lost).
function onWorkerEvent(ev) {
  if (ev.event === "notice") {
    notice(ev.text);
    // the worker dropped its GPU models: the next use loads them on the CPU
    if (ev.text.startsWith("The GPU stopped working")) for (const [id, m] of state.models) if (m.backend === "webgpu") state.models.delete(id);
  } else if (ev.event === "progress") {
    showProgress(ev);
  } else if (ev.event === "rows") {
    drawRows(ev);
  } else if (ev.event === "crash") {
    showError(`The viewer's ${ev.text}. The open image is kept; reload the page if it stops responding.`);
  }
}

// A model the user opened from disk: id "file:NAME" -> { bytes }.
const userModels = new Map();

async function loadModel(id) {
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

const fmt = (v, digits = 3) => (typeof v === "number" ? v.toFixed(digits) : "–");

function describeModel(id, m) {
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
  const validation = mf.metrics && mf.metrics.validation_pixel_dice;
  if (!(test && test.int8) && typeof validation === "number") {
    const t = document.createElement("p");
    t.className = "metrics";
    t.textContent = `Validation (held-out training images): mean pixel Dice ${fmt(validation)}.`;
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

const hex = (c) => `#${c.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
const unhex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));

// Per-class colour pickers and visibility toggles for the classes of `manifest`.
function buildLegend(modelId, manifest) {
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

// Rows of a streamed whole-slide run, drawn as they are labelled onto a preview overlay of the
// whole slide (every `step`-th row and column) that the finished result's overlay then replaces.
function drawRows({ step, y, height, width, rgba }) {
  const run = state.running;
  if (!run || !state.image) return;
  if (!run.partial) {
    const c = document.createElement("canvas");
    c.width = Math.ceil(state.image.width / step); c.height = Math.ceil(state.image.height / step);
    run.partial = c;
    state.viewer.setOverlay({ canvas: c, x: 0, y: 0, width: state.image.width, height: state.image.height });
  }
  run.partial.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba.buffer), width, height), 0, y);
  state.viewer.redraw();
  window.histoseg.rowsDrawn = Math.min(state.image.height, (y + height) * step);
}

// A run that ends without a result takes its rows off the view; the last result is shown again.
function dropPartial(run) {
  if (!run.partial || state.viewer.overlay?.canvas !== run.partial) return;
  if (state.result) renderOverlay();
  else state.viewer.setOverlay(null);
}

// Draws the result with the current class colours and visibility; only the newest request is
// drawn when several are in flight (a colour picker sends many).
let overlaySeq = 0;
async function renderOverlay() {
  const r = state.result;
  if (!r) return;
  const seq = ++overlaySeq;
  const style = state.styles.get(r.modelId);
  const rgba = await state.compute.call("overlay", { colors: style.colors.flat(), visible: style.visible.map((v) => (v ? 1 : 0)), contour: $("mode").value === "contour" });
  if (seq !== overlaySeq || state.result !== r) return;
  const c = document.createElement("canvas");
  c.width = r.width; c.height = r.height;
  c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba.buffer), c.width, c.height), 0, 0);
  state.viewer.setOverlay({ canvas: c, x: r.x, y: r.y, width: r.width, height: r.height });
  window.histoseg.overlays += 1;
}

function setBusy(busy) {
  $("segment-view").disabled = busy || !state.image;
  $("segment-all").disabled = busy || !state.image;
  $("cancel").disabled = !busy;
  for (const id of ["export-labels", "export-overlay", "export-geojson", "export-csv", "export-json"]) $(id).disabled = !state.result;
}

function resolutionInput() {
  const text = $("umpp").value.trim();
  if (text === "") return undefined;
  const v = Number(text);
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`the resolution must be a positive number of µm per pixel, not "${text}"`);
  return v;
}

// Plain images (PNG, JPEG, BMP) are decoded whole by each worker that opens them; above this size
// only the compute worker holds one, and it serves the viewer's tiles too (between tiles of a run).
const DISPLAY_COPY_MAX_PIXELS = 16e6;

// The viewer's slide: display tiles come from the display worker, or the compute worker.
const displaySource = (levels, worker) => ({
  levels,
  region: (level, x, y, width, height) => worker.call("region", { level, x, y, width, height }),
});

// While a new image is being opened, a run's answer waits for the outcome: if the new image
// opens, the run's mask (of the previous image) is not drawn.
async function openFile(file, name, hint = {}) {
  state.opening = openFileNow(file, name, hint).finally(() => { state.opening = null; });
  return state.opening;
}

async function openFileNow(file, name, hint) {
  clearError();
  // the compute worker opens the File first (a TIFF or SVS lazily: only its directories are read);
  // if that fails, whatever image and mask the user already has stay
  let opened;
  try {
    opened = await state.compute.call("open", { blob: file, name });
  } catch (e) {
    showError(`Cannot open ${name}: ${message(e)}`);
    return false;
  }
  let display = state.compute;
  const plain = ["PNG", "JPEG", "BMP"].includes(opened.format);
  if (!plain || opened.width * opened.height <= DISPLAY_COPY_MAX_PIXELS) {
    try {
      await state.display.call("open", { blob: file });
      display = state.display;
    } catch (e) {
      console.warn(`the display worker could not open ${name} (${message(e)}); the compute worker serves the view`);
    }
  }
  // a display worker not showing this image lets go of the previous one
  if (display !== state.display) await state.display.call("close").catch(() => {});
  // the compute worker has cancelled a run on the previous image
  if (state.running) { state.running.cancelled = true; state.running.why = "a new image was opened"; }
  state.result = null;
  state.file = file;
  let um = opened.umPerPx, umSource = "from the file";
  if (um == null && hint.umPerPx) { um = hint.umPerPx; umSource = "assumed for this sample"; }
  if (um == null) umSource = "unknown";
  $("umpp").value = um == null ? "" : String(Math.round(um * 10000) / 10000);
  $("mag").value = "";
  const note = opened.note;
  state.image = {
    name, width: opened.width, height: opened.height, format: opened.format, umPerPx: um ?? null, umSource,
    levels: opened.levels.length, openMs: opened.openMs, note: note ?? null, fileBytes: file.size, bytesRead: opened.bytesRead,
  };
  window.histoseg.image = state.image;
  window.histoseg.opened += 1;
  const n = opened.levels.length;
  $("image-info").textContent = `${name}: ${opened.format}, ${opened.width}×${opened.height} px, ${n} level${n > 1 ? "s" : ""}; resolution ${um == null ? "not recorded: set it or the magnification below (the model's own is assumed until then)" : `${fmt(um, 3)} µm/px (${umSource})`}.${note ? ` Converted: ${note}.` : ""}`;
  state.viewer.setSlide(displaySource(opened.levels, display));
  const m = state.models.get($("model").value);
  if (m) buildLegend($("model").value, m.manifest);
  $("progress").value = 0;
  $("progress-text").textContent = "Segment the visible region or the whole image.";
  setBusy(false);
  setStatus("opened");
  restoreKept();
  return true;
}

// A finished result is kept in this browser (kept.js, in the compute worker); when the same file
// is opened again with the same model, after a reload or another day, it is shown again.
async function restoreKept() {
  try {
    await restoreKeptNow();
  } finally {
    window.histoseg.restoreChecks += 1;
  }
}

async function restoreKeptNow() {
  const modelId = $("model").value;
  const image = state.image;
  if (userModels.has(modelId)) return;
  let out, m;
  try {
    out = await state.compute.call("restore", { modelId });
    if (out) m = await loadModel(modelId);
  } catch (e) {
    console.warn(`the kept result could not be restored: ${message(e)}`);
    return;
  }
  // another image, a run or a result came first
  if (!out || state.image !== image || state.running || state.result) return;
  state.result = { modelId, manifest: m.manifest, name: image.name, x: out.x, y: out.y, width: out.width, height: out.height };
  buildLegend(modelId, m.manifest);
  await renderOverlay();
  setBusy(false);
  const when = new Date(out.savedAt).toLocaleString();
  $("progress-text").textContent = `Restored: the result of ${when}, kept in this browser.`;
  setStats([
    ["result", `kept in this browser on ${when} (${out.tiles} tiles, ${out.backend === "webgpu" ? "WebGPU" : "CPU"})`],
    ["region", `${out.width}×${out.height} px at (${out.x}, ${out.y})`],
    ...classStats(m.manifest, out.classAreas, out.width * out.height, out.umPerPx ?? null),
    ["objects", `${out.objects}`],
  ]);
  window.histoseg.restored.push({ name: image.name, savedAt: out.savedAt });
  window.histoseg.lastResult = {
    x: out.x, y: out.y, width: out.width, height: out.height, restored: true, savedAt: out.savedAt,
    backend: out.backend, tiles: out.tiles, classAreas: out.classAreas, objects: out.objects,
  };
  // the status stays "opened": the image is open, and nothing ran
}

// Per-class area rows of the statistics: the share of the region, and mm² when µm/px is known.
function classStats(mf, areas, total, um) {
  return mf.classes.map((c, i) => [c, i]).filter(([, i]) => i > 0 && i !== mf.postprocess?.boundary_class).map(([c, i]) => [`${c.name}`,
    `${(100 * areas[i] / total).toFixed(1)} %${um ? `, ${(areas[i] * um * um / 1e6).toFixed(3)} mm²` : ""}`]);
}

function formatDuration(ms) {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

// Progress events of the running segmentation, from the compute worker.
function showProgress(p) {
  if (!state.running || state.running.cancelled) return;
  const progress = $("progress"), text = $("progress-text");
  progress.max = p.total;
  progress.value = p.done;
  if (p.gpuLost) { text.textContent = `${p.done} / ${p.total} tiles; the GPU was lost, continuing on the CPU…`; return; }
  if (p.done === 0) { text.textContent = `0 / ${p.total} tiles`; return; }
  const eta = (p.elapsedMs / p.done) * (p.total - p.done);
  text.textContent = `${p.done} / ${p.total} tiles, ${p.blending ? "blending…" : `about ${formatDuration(eta)} left`}`;
}

async function segment(region) {
  if (!state.image) return;
  if (state.running) {
    // a run cancelled by opening another image finishes its current tile first
    if (!state.running.cancelled) return;
    await state.running.finished;
    if (state.running) return;
  }
  clearError();
  // the run starts at the click: loading the model (again on the CPU after a GPU loss) may take
  // seconds, and a page or test that waits for the run's end must not see the last run's status
  let finish;
  const run = { cancelled: false, why: "", finished: new Promise((r) => { finish = r; }) };
  state.running = run;
  setBusy(true);
  const before = window.histoseg.status;
  setStatus("segmenting");
  const refuse = (text) => {
    if (state.running === run) state.running = null;
    setBusy(false);
    finish();
    setStatus(before);
    showError(text);
  };
  const modelId = $("model").value;
  let m, um;
  try {
    m = await loadModel(modelId);
  } catch (e) {
    refuse(`The model could not be loaded: ${message(e)}`);
    return;
  }
  try {
    um = resolutionInput();
  } catch (e) {
    refuse(`Cannot segment: ${message(e)}`);
    return;
  }
  const tta = $("quality").value === "best";
  const name = state.image.name;
  $("progress").value = 0;
  let out;
  try {
    const style = state.styles.get(modelId);
    const styleArg = style && { colors: style.colors.flat(), visible: style.visible.map((v) => (v ? 1 : 0)) };
    out = await state.compute.call("segment", { modelId, region, umPerPx: um, tta, style: styleArg });
    if (!out.cancelled && state.opening && (await state.opening)) {
      out = { cancelled: true, done: out.tiles, total: out.tiles, why: "a new image was opened" };
    }
  } catch (e) {
    dropPartial(run);
    if (e.whole) {
      // refused before it started (the region, the resolution or the model)
      showError(e.message);
      setStatus(before);
    } else {
      showError(`Segmentation failed: ${message(e)}`);
      setStatus("error");
    }
    return;
  } finally {
    if (state.running === run) state.running = null;
    setBusy(false);
    finish();
  }
  if (out.cancelled) {
    dropPartial(run);
    const text = `Cancelled after ${out.done} of ${out.total} tiles${out.why ? `: ${out.why}` : ""}.`;
    $("progress-text").textContent = text;
    window.histoseg.cancelled.push(text);
    setStatus("cancelled");
    return;
  }
  // the backend the run ended on (the GPU may have been lost on the way)
  m = state.models.get(modelId) || m;
  state.result = { modelId, manifest: m.manifest, name, x: out.x, y: out.y, width: out.width, height: out.height };
  window.histoseg.drawn.push(name);
  buildLegend(modelId, m.manifest);
  const t2 = performance.now();
  await renderOverlay();
  const overlayMs = performance.now() - t2;
  setBusy(false);
  const adapter = m.adapter;
  const backend = out.backend === "webgpu"
    ? `WebGPU${adapter ? ` (${[adapter.vendor, adapter.architecture].filter(Boolean).join(" ")})` : ""}`
    : `CPU (burn flex)${out.gpuLostAtTile != null ? `, after the GPU was lost with ${out.gpuLostAtTile} tiles done` : ""}`;
  const areas = out.classAreas;
  const total = out.width * out.height;
  const umKnown = um ?? null;
  const mf = m.manifest;
  setStats([
    ["backend", backend],
    ["region", `${out.width}×${out.height} px at (${out.x}, ${out.y}); ${out.tiles} tiles of ${mf.tile_size} px${tta ? ", each in 8 orientations" : ""}${out.glassTiles ? `; ${out.glassTiles} tiles of glass alone skipped` : ""}`],
    ["model fetch", `${m.fetchMs.toFixed(0)} ms`],
    ["model init", `${m.initMs.toFixed(0)} ms`],
    ["open", `${state.image.openMs.toFixed(0)} ms`],
    ["inference", `${out.inferMs.toFixed(0)} ms (${out.msPerTile.toFixed(0)} ms/tile${out.workers > 1 ? `, ${out.workers} CPU workers` : ""})`],
    ["blend + labels", `${out.blendMs.toFixed(0)} ms`],
    ["overlay", `${overlayMs.toFixed(0)} ms`],
    ...classStats(mf, areas, total, umKnown),
    ["objects", `${out.objects}`],
  ]);
  $("progress-text").textContent = `Done: ${out.tiles} tiles in ${formatDuration(out.inferMs)}.${out.kept ? " Kept in this browser: opening this file again shows it." : ""}`;
  window.histoseg.lastResult = {
    x: out.x, y: out.y, width: out.width, height: out.height,
    backend: out.backend, workers: out.workers, adapter, tiles: out.tiles, glassTiles: out.glassTiles, tta, msPerTile: out.msPerTile, gpuLostAtTile: out.gpuLostAtTile,
    classAreas: out.classAreas, objects: out.objects,
    timings: { fetchMs: m.fetchMs, initMs: m.initMs, openMs: state.image.openMs, inferMs: out.inferMs, blendMs: out.blendMs, overlayMs },
  };
  setStatus("done");
}

async function exportResult(kind) {
  const r = state.result;
  if (!r) return;
  clearError();
  const style = state.styles.get(r.modelId);
  const args = { kind, opacity: Number($("opacity").value), colors: style.colors.flat(), visible: style.visible.map((v) => (v ? 1 : 0)), contour: $("mode").value === "contour" };
  const [ext, type] = {
    labels: ["labels.png", "image/png"], overlay: ["overlay.png", "image/png"], geojson: ["geojson", "application/geo+json"],
    csv: ["measurements.csv", "text/csv"], json: ["measurements.json", "application/json"],
  }[kind];
  try {
    const bytes = await state.compute.call("export", args);
    download(bytes, exportName(r, state.image, ext), type);
  } catch (e) {
    showError(`The export failed: ${message(e)}`);
  }
}

async function openSample(key) {
  const s = SAMPLES[key];
  $("model").value = s.model;
  $("model").dispatchEvent(new Event("change"));
  try {
    const resp = await fetch(s.file);
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    await openFile(await resp.blob(), s.file.split("/").pop(), s);
    if (s.domain) notice(s.domain);
  } catch (e) {
    showError(`The sample could not be loaded: ${message(e)}`);
  }
}

function bindControls() {
  const select = $("model");
  for (const m of MODELS) {
    const o = document.createElement("option");
    o.value = m.id; o.textContent = m.label;
    select.append(o);
  }
  const wanted = new URLSearchParams(location.search).get("model");
  if (wanted && MODELS.some((m) => m.id === wanted)) select.value = wanted;
  select.addEventListener("change", async () => {
    clearError();
    try {
      describeModel(select.value, await loadModel(select.value));
    } catch (e) {
      showError(`The model could not be loaded: ${message(e)}`);
    }
  });
  // A model file from disk (one trained with `histoseg train`, any number of classes): it is read
  // here, never uploaded, and joins the model list for this visit.
  $("model-file").addEventListener("change", async (ev) => {
    const f = ev.target.files[0];
    ev.target.value = "";
    if (!f) return;
    clearError();
    const id = `file:${f.name}`;
    const previous = select.value;
    try {
      userModels.set(id, { bytes: new Uint8Array(await f.arrayBuffer()) });
      state.models.delete(id);
      state.styles.delete(id);
      const m = await loadModel(id);
      let option = [...select.options].find((o) => o.value === id);
      if (!option) {
        option = document.createElement("option");
        option.value = id;
        select.append(option);
      }
      option.textContent = `${m.manifest.name} (${f.name})`;
      select.value = id;
      describeModel(id, m);
    } catch (e) {
      userModels.delete(id);
      select.value = previous;
      showError(`The model could not be loaded: ${message(e)}`);
    }
  });
  // the File itself goes to the workers, which read only the parts they need
  const chosen = async (f) => { if (f) await openFile(f, f.name); };
  $("file").addEventListener("change", async (ev) => { await chosen(ev.target.files[0]); ev.target.value = ""; });
  const drop = $("drop");
  for (const el of [drop, $("viewer")]) {
    el.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
    el.addEventListener("dragleave", () => drop.classList.remove("over"));
    el.addEventListener("drop", async (ev) => {
      ev.preventDefault();
      drop.classList.remove("over");
      await chosen(ev.dataTransfer.files[0]);
    });
  }
  $("sample-glands").addEventListener("click", () => openSample("glands"));
  $("sample-nuclei").addEventListener("click", () => openSample("nuclei"));
  $("mag").addEventListener("change", () => { if ($("mag").value) $("umpp").value = $("mag").value; });
  $("segment-view").addEventListener("click", () => { const r = state.viewer.visibleRegion(); if (r) segment(r); });
  $("segment-all").addEventListener("click", () => segment({ x: 0, y: 0, width: state.image.width, height: state.image.height }));
  $("cancel").addEventListener("click", () => { if (state.running) state.compute.call("cancel"); });
  $("forget").addEventListener("click", async () => {
    try {
      await state.compute.call("forget");
      notice("Kept results forgotten: this browser holds none now.");
    } catch (e) {
      showError(`The kept results could not be forgotten: ${message(e)}`);
    }
  });
  const style = () => state.viewer.setOverlayStyle({ visible: $("show-overlay").checked, opacity: Number($("opacity").value) });
  $("opacity").addEventListener("input", style);
  $("show-overlay").addEventListener("change", style);
  $("mode").addEventListener("change", renderOverlay);
  addEventListener("keydown", (ev) => {
    if (ev.target.closest && ev.target.closest("input, select, textarea")) return;
    if ((ev.key === "c" || ev.key === "C") && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      $("show-overlay").checked = !$("show-overlay").checked;
      style();
    }
  });
  for (const [id, kind] of [["export-labels", "labels"], ["export-overlay", "overlay"], ["export-geojson", "geojson"], ["export-csv", "csv"], ["export-json", "json"]]) {
    $(id).addEventListener("click", () => exportResult(kind));
  }
  $("zoom-in").addEventListener("click", () => state.viewer.zoomBy(1.5));
  $("zoom-out").addEventListener("click", () => state.viewer.zoomBy(1 / 1.5));
  $("zoom-fit").addEventListener("click", () => state.viewer.fit());
}

// Anything not caught where it happened still reaches the user, never a silent, stuck page.
addEventListener("unhandledrejection", (ev) => showError(`Unexpected error: ${message(ev.reason)}. The open image is kept; reload the page if the viewer stops responding.`));
addEventListener("error", (ev) => showError(`Unexpected error: ${ev.message}. The open image is kept; reload the page if the viewer stops responding.`));

// A new build's service worker waits with its own cache until the user takes it (sw.js): the
// page offers it, and on the click that version takes over and the page reloads with it.
function offerUpdates(reg) {
  if (!reg) return; // service workers blocked (an automated browser)
  let taking = false;
  const offer = () => {
    if (!reg.waiting || !navigator.serviceWorker.controller) return;
    $("update").hidden = false;
    window.histoseg.updateReady = true;
  };
  const watch = (w) => w?.addEventListener("statechange", () => { if (w.state === "installed") offer(); });
  offer();
  watch(reg.installing);
  reg.addEventListener("updatefound", () => watch(reg.installing));
  $("update-now").addEventListener("click", () => { taking = true; reg.waiting?.postMessage("update"); });
  navigator.serviceWorker.addEventListener("controllerchange", () => { if (taking) location.reload(); });
}

async function main() {
  // the service worker caches the app and models so the page works offline after a first visit
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").then(offerUpdates, (e) => console.warn(`offline cache unavailable: ${message(e)}`));
  }
  state.viewer = new SlideViewer($("viewer"), $("view"), {
    onChange: (v) => { $("zoom-level").textContent = `${(v.scale * 100).toFixed(v.scale < 0.1 ? 1 : 0)} %`; },
  });
  const backend = new URLSearchParams(location.search).get("backend");
  try {
    state.compute = new WorkerClient("compute", onWorkerEvent);
    state.display = new WorkerClient("display", onWorkerEvent);
    const cpuWorkers = Number(new URLSearchParams(location.search).get("cpu-workers")) || undefined;
    await Promise.all([state.compute.call("init", { backend, cpuWorkers }), state.display.call("init", { backend: "cpu" })]);
  } catch (e) {
    showError(`The viewer could not start: ${message(e)}`);
    return;
  }
  bindControls();
  setBusy(false);
  try {
    const id = $("model").value;
    describeModel(id, await loadModel(id));
    setStatus("ready");
  } catch (e) {
    showError(`The model could not be loaded: ${message(e)}`);
    setStatus("error");
  }
}

main();
