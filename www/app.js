// The page's glue: opening files, choosing the backend and model, driving a segmentation job
// tile by tile (progress, ETA, cancel), overlay controls and downloads. Decoding, inference,
// blending, overlay drawing and every export are done in Rust (wasm); the pan/zoom view is in
// viewer.js. Nothing is sent anywhere: the only requests are for this page's own files.
import { SlideViewer } from "./viewer.js";

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

// The browser viewer holds a whole file in wasm memory (a 32-bit address space), twice while it
// is copied in; larger files are refused before they are read.
const MAX_FILE_BYTES = 2e9;

const $ = (id) => document.getElementById(id);
const state = {
  wasm: null,
  slide: null,        // wasm Slide
  image: null,        // { name, width, height, format, umPerPx, umSource }
  models: new Map(),  // id -> { model, manifest, bytes, fetchMs, initMs }
  styles: new Map(),  // model id -> { colors: [[r,g,b]], visible: [bool] }
  running: null,      // { cancelled, finished: Promise }
  gpuLost: null,      // a Promise that resolves with the reason when the WebGPU device is lost
  result: null,       // { res, modelId, manifest, name }
  adapterInfo: null,
  webgpuUsable: null, // null = not probed yet
  viewer: null,
};
// Read by the browser tests and handy in the console.
window.histoseg = {
  status: "starting", lastResult: null, errors: [], notices: [], image: null, opened: 0, cancelled: [], drawn: [],
  labels: () => state.result && state.result.res.labels(),
  geojson: () => state.result && state.result.res.geojson(),
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

async function wasmBindings() {
  if (window.wasmBindings) return window.wasmBindings;
  return new Promise((resolve) => addEventListener("TrunkApplicationStarted", () => resolve(window.wasmBindings), { once: true }));
}

// burn creates its WebGPU device inside wasm; watching requestDevice lets the page learn when
// that device is lost (driver reset, GPU removed, device.destroy()) and move work to the CPU.
let gpuLostResolve;
state.gpuLost = new Promise((resolve) => { gpuLostResolve = resolve; });
if (globalThis.GPUAdapter && GPUAdapter.prototype.requestDevice) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    device.lost.then((info) => gpuLostResolve(info.message || info.reason || "the device was lost"));
    return device;
  };
}
state.gpuLost.then((why) => {
  state.webgpuUsable = false;
  // models built on the lost device are dropped; the next use loads them on the CPU
  for (const [id, m] of state.models) if (m.model.backend === "webgpu") state.models.delete(id);
  notice(`The GPU stopped working (${why}); continuing on the CPU. Work already done is kept.`);
});

// Which backend to try: ?backend=cpu forces the CPU; otherwise WebGPU when an adapter exists.
async function probeWebGPU() {
  const pref = new URLSearchParams(location.search).get("backend");
  if (pref === "cpu") return { usable: false, why: "CPU requested in the address (?backend=cpu)" };
  if (!("gpu" in navigator) || !navigator.gpu) return { usable: false, why: "this browser has no WebGPU" };
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { usable: false, why: "no WebGPU adapter is available" };
    const info = adapter.info || {};
    state.adapterInfo = { vendor: info.vendor || "", architecture: info.architecture || "", description: info.description || "" };
    return { usable: true };
  } catch (e) {
    return { usable: false, why: `WebGPU adapter request failed: ${message(e)}` };
  }
}

// A model the user opened from disk: id "file:NAME" -> { bytes, label }. Its bytes are kept so
// it can be loaded again on the CPU if the GPU is lost.
const userModels = new Map();

async function modelBytes(id) {
  const own = userModels.get(id);
  if (own) return { bytes: own.bytes, fetchMs: 0 };
  const entry = MODELS.find((m) => m.id === id);
  const t0 = performance.now();
  const resp = await fetch(entry.file);
  if (!resp.ok) throw new Error(`could not fetch the model file ${entry.file} (HTTP ${resp.status})`);
  return { bytes: new Uint8Array(await resp.arrayBuffer()), fetchMs: performance.now() - t0 };
}

async function loadModel(id) {
  if (state.models.has(id)) return state.models.get(id);
  const { bytes, fetchMs } = await modelBytes(id);
  if (state.webgpuUsable === null) {
    const probe = await probeWebGPU();
    state.webgpuUsable = probe.usable;
    if (!probe.usable) notice(`Running on the CPU: ${probe.why}.`);
  }
  let model;
  const t1 = performance.now();
  if (state.webgpuUsable) {
    try {
      model = await state.wasm.Model.load(bytes, "webgpu");
    } catch (e) {
      state.webgpuUsable = false;
      notice(`WebGPU failed (${message(e)}); running on the CPU instead.`);
    }
  }
  if (!model) model = await state.wasm.Model.load(bytes, "cpu");
  const manifest = model.manifest();
  const loaded = { model, manifest, bytes: bytes.length, fetchMs, initMs: performance.now() - t1 };
  state.models.set(id, loaded);
  if (!state.styles.has(id)) {
    state.styles.set(id, { colors: manifest.classes.map((c) => [...c.color]), visible: manifest.classes.map(() => true) });
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

function renderOverlay() {
  const r = state.result;
  if (!r) return;
  const style = state.styles.get(r.modelId);
  const colors = new Uint8Array(style.colors.flat());
  const visible = new Uint8Array(style.visible.map((v) => (v ? 1 : 0)));
  const contour = $("mode").value === "contour";
  const rgba = r.res.overlay(colors, visible, contour);
  const c = document.createElement("canvas");
  c.width = r.res.width; c.height = r.res.height;
  c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba.buffer), c.width, c.height), 0, 0);
  state.viewer.setOverlay({ canvas: c, x: r.res.x, y: r.res.y, width: r.res.width, height: r.res.height });
}

function setBusy(busy) {
  $("segment-view").disabled = busy || !state.slide;
  $("segment-all").disabled = busy || !state.slide;
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

async function openBytes(bytes, name, hint = {}) {
  clearError();
  let slide;
  const t0 = performance.now();
  try {
    slide = state.wasm.Slide.open(bytes);
  } catch (e) {
    // keep whatever image and mask the user already has
    showError(`Cannot open ${name}: ${message(e)}`);
    return false;
  }
  const openMs = performance.now() - t0;
  if (state.running) { state.running.cancelled = true; state.running.why = "a new image was opened"; }
  if (state.result) { state.result.res.free(); state.result = null; }
  if (state.slide) state.slide.free();
  state.slide = slide;
  const levels = slide.levels();
  let um = slide.umPerPx, umSource = "from the file";
  if (um == null && hint.umPerPx) { um = hint.umPerPx; umSource = "assumed for this sample"; }
  if (um == null) umSource = "unknown";
  $("umpp").value = um == null ? "" : String(Math.round(um * 10000) / 10000);
  $("mag").value = "";
  const note = slide.note;
  state.image = { name, width: slide.width, height: slide.height, format: slide.format, umPerPx: um ?? null, umSource, levels: levels.length, openMs, note: note ?? null };
  window.histoseg.image = state.image;
  window.histoseg.opened += 1;
  $("image-info").textContent = `${name}: ${slide.format}, ${slide.width}×${slide.height} px, ${levels.length} level${levels.length > 1 ? "s" : ""}; resolution ${um == null ? "not recorded: set it or the magnification below (the model's own is assumed until then)" : `${fmt(um, 3)} µm/px (${umSource})`}.${note ? ` Converted: ${note}.` : ""}`;
  state.viewer.setSlide(slide);
  const m = state.models.get($("model").value);
  if (m) buildLegend($("model").value, m.manifest);
  $("progress").value = 0;
  $("progress-text").textContent = "Segment the visible region or the whole image.";
  setBusy(false);
  setStatus("opened");
  return true;
}

function formatDuration(ms) {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

async function segment(region) {
  if (!state.slide) return;
  if (state.running) {
    // a run cancelled by opening another image finishes its current tile first
    if (!state.running.cancelled) return;
    await state.running.finished;
    if (state.running) return;
  }
  clearError();
  const modelId = $("model").value;
  let m;
  try {
    m = await loadModel(modelId);
  } catch (e) {
    showError(`The model could not be loaded: ${message(e)}`);
    return;
  }
  let um, job;
  const tta = $("quality").value === "best";
  try {
    um = resolutionInput();
    // "best": every tile in the eight flips and 90° rotations, averaged (test-time augmentation)
    job = m.model.segment(state.slide, region.x, region.y, region.width, region.height, um, tta);
  } catch (e) {
    showError(`Cannot segment: ${message(e)}`);
    return;
  }
  let finish;
  const run = { cancelled: false, why: "", finished: new Promise((r) => { finish = r; }) };
  state.running = run;
  setBusy(true);
  setStatus("segmenting");
  const progress = $("progress"), text = $("progress-text");
  progress.max = job.total;
  progress.value = 0;
  const tileMs = [];
  const t0 = performance.now();
  try {
    for (;;) {
      // let the page paint and handle input between tiles
      await new Promise((r) => setTimeout(r, 0));
      if (run.cancelled) {
        text.textContent = `Cancelled after ${job.done} of ${job.total} tiles${run.why ? `: ${run.why}` : ""}.`;
        window.histoseg.cancelled.push(text.textContent);
        job.free();
        setStatus("cancelled");
        return;
      }
      const ts = performance.now();
      const lost = m.model.backend === "webgpu" ? state.gpuLost.then(() => "lost") : new Promise(() => {});
      let done;
      try {
        done = await Promise.race([job.step(1), lost]);
      } catch (e) {
        // a step that fails because the device went away: wait briefly for the loss to be reported
        const reported = await Promise.race([lost, new Promise((r) => setTimeout(r, 2000))]);
        if (reported !== "lost") throw e;
        done = "lost";
      }
      if (done === "lost") {
        // same model file on the CPU; the tiles already blended stay in the job
        run.gpuLostAtTile = job.done;
        m = await loadModel(modelId);
        job.useModel(m.model);
        text.textContent = `${job.done} / ${job.total} tiles; the GPU was lost, continuing on the CPU…`;
        continue;
      }
      if (run.cancelled) continue;
      tileMs.push(performance.now() - ts);
      progress.value = job.done;
      const elapsed = performance.now() - t0;
      const eta = (elapsed / job.done) * (job.total - job.done);
      text.textContent = `${job.done} / ${job.total} tiles, ${done ? "blending…" : `about ${formatDuration(eta)} left`}`;
      if (done) break;
    }
  } catch (e) {
    showError(`Segmentation failed: ${message(e)}`);
    setStatus("error");
    job.free();
    return;
  } finally {
    if (state.running === run) state.running = null;
    setBusy(false);
    finish();
  }
  const inferMs = performance.now() - t0;
  const tiles = job.total;
  const t1 = performance.now();
  const res = job.finish();
  job.free();
  const blendMs = performance.now() - t1;
  if (state.result) state.result.res.free();
  state.result = { res, modelId, manifest: m.manifest, name: state.image.name };
  window.histoseg.drawn.push(state.image.name);
  buildLegend(modelId, m.manifest);
  const t2 = performance.now();
  renderOverlay();
  const overlayMs = performance.now() - t2;
  setBusy(false);
  const mean = tileMs.reduce((a, b) => a + b, 0) / tileMs.length;
  const backend = m.model.backend === "webgpu"
    ? `WebGPU${state.adapterInfo ? ` (${[state.adapterInfo.vendor, state.adapterInfo.architecture].filter(Boolean).join(" ")})` : ""}`
    : `CPU (burn flex)${run.gpuLostAtTile != null ? `, after the GPU was lost with ${run.gpuLostAtTile} tiles done` : ""}`;
  const areas = res.classAreas();
  const total = res.width * res.height;
  const umKnown = um ?? null;
  setStats([
    ["backend", backend],
    ["region", `${res.width}×${res.height} px at (${res.x}, ${res.y}); ${tiles} tiles of ${m.manifest.tile_size} px${tta ? ", each in 8 orientations" : ""}`],
    ["model fetch", `${m.fetchMs.toFixed(0)} ms`],
    ["model init", `${m.initMs.toFixed(0)} ms`],
    ["open", `${state.image.openMs.toFixed(0)} ms`],
    ["inference", `${inferMs.toFixed(0)} ms (${mean.toFixed(0)} ms/tile)`],
    ["blend + labels", `${blendMs.toFixed(0)} ms`],
    ["overlay", `${overlayMs.toFixed(0)} ms`],
    ...m.manifest.classes.map((c, i) => [c, i]).filter(([, i]) => i > 0 && i !== m.manifest.postprocess?.boundary_class).map(([c, i]) => [`${c.name}`,
      `${(100 * areas[i] / total).toFixed(1)} %${umKnown ? `, ${(areas[i] * umKnown * umKnown / 1e6).toFixed(3)} mm²` : ""}`]),
    ["objects", `${res.objectCount()}`],
  ]);
  $("progress-text").textContent = `Done: ${tiles} tiles in ${formatDuration(inferMs)}.`;
  window.histoseg.lastResult = {
    x: res.x, y: res.y, width: res.width, height: res.height,
    backend: m.model.backend, adapter: state.adapterInfo, tiles, tta, msPerTile: mean, gpuLostAtTile: run.gpuLostAtTile ?? null,
    classAreas: Array.from(areas), objects: res.objectCount(),
    timings: { fetchMs: m.fetchMs, initMs: m.initMs, openMs: state.image.openMs, inferMs, blendMs, overlayMs },
  };
  setStatus("done");
}

function download(bytes, name, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement("a");
  a.href = url; a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function exportName(ext) {
  const r = state.result.res;
  const stem = state.result.name.replace(/\.[^.]+$/, "");
  const whole = r.x === 0 && r.y === 0 && r.width === state.slide.width && r.height === state.slide.height;
  return `${stem}${whole ? "" : `_x${r.x}_y${r.y}_${r.width}x${r.height}`}.${ext}`;
}

function exportResult(kind) {
  const r = state.result;
  if (!r) return;
  clearError();
  try {
    const style = state.styles.get(r.modelId);
    switch (kind) {
      case "labels": download(r.res.labelPng(), exportName("labels.png"), "image/png"); break;
      case "overlay": download(r.res.overlayPng(state.slide, Number($("opacity").value), new Uint8Array(style.colors.flat()),
        new Uint8Array(style.visible.map((v) => (v ? 1 : 0))), $("mode").value === "contour"), exportName("overlay.png"), "image/png"); break;
      case "geojson": download(r.res.geojson(), exportName("geojson"), "application/geo+json"); break;
      case "csv": download(r.res.measurementsCsv(), exportName("measurements.csv"), "text/csv"); break;
      case "json": download(r.res.measurementsJson(), exportName("measurements.json"), "application/json"); break;
    }
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
    await openBytes(new Uint8Array(await resp.arrayBuffer()), s.file.split("/").pop(), s);
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
  const openFile = async (f) => {
    if (!f) return;
    if (f.size > MAX_FILE_BYTES) {
      showError(`Cannot open ${f.name}: the file is ${(f.size / 1e9).toFixed(1)} GB; the browser viewer reads a whole file into memory and takes files up to ${MAX_FILE_BYTES / 1e9} GB. Segment it with the histoseg command line tool, which reads slides tile by tile.`);
      return;
    }
    let bytes;
    try {
      bytes = new Uint8Array(await f.arrayBuffer());
    } catch (e) {
      showError(`Cannot open ${f.name}: the browser could not read the file (${message(e)}).`);
      return;
    }
    await openBytes(bytes, f.name);
  };
  $("file").addEventListener("change", async (ev) => { await openFile(ev.target.files[0]); ev.target.value = ""; });
  const drop = $("drop");
  for (const el of [drop, $("viewer")]) {
    el.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
    el.addEventListener("dragleave", () => drop.classList.remove("over"));
    el.addEventListener("drop", async (ev) => {
      ev.preventDefault();
      drop.classList.remove("over");
      await openFile(ev.dataTransfer.files[0]);
    });
  }
  $("sample-glands").addEventListener("click", () => openSample("glands"));
  $("sample-nuclei").addEventListener("click", () => openSample("nuclei"));
  $("mag").addEventListener("change", () => { if ($("mag").value) $("umpp").value = $("mag").value; });
  $("segment-view").addEventListener("click", () => { const r = state.viewer.visibleRegion(); if (r) segment(r); });
  $("segment-all").addEventListener("click", () => segment({ x: 0, y: 0, width: state.slide.width, height: state.slide.height }));
  $("cancel").addEventListener("click", () => { if (state.running) state.running.cancelled = true; });
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

async function main() {
  // the service worker caches the app and models so the page works offline after a first visit
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("sw.js").catch((e) => console.warn(`offline cache unavailable: ${message(e)}`));
  }
  state.viewer = new SlideViewer($("viewer"), $("view"), {
    onChange: (v) => { $("zoom-level").textContent = `${(v.scale * 100).toFixed(v.scale < 0.1 ? 1 : 0)} %`; },
  });
  try {
    state.wasm = await wasmBindings();
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
