// The page's glue: file picking, backend choice, driving a segmentation job, drawing.
// All decoding, inference and blending happen in Rust (wasm); nothing is sent anywhere.

const MODELS = [
  { id: "glands", label: "Glands (colon, GlaS)", file: "models/glands.histoseg" },
  { id: "nuclei", label: "Nuclei (MoNuSeg)", file: "models/nuclei.histoseg" },
];
const SAMPLE = "samples/tcia-he-500x300.jpg";

const $ = (id) => document.getElementById(id);
const state = {
  wasm: null,
  image: null,        // DecodedImage
  models: new Map(),  // id -> { model, manifest }
  running: null,      // { cancelled }
  adapterInfo: null,
  webgpuUsable: null, // null = not probed yet
};
// Read by the browser tests and handy in the console.
window.histoseg = { status: "starting", lastResult: null, errors: [], notices: [] };

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
    return { usable: false, why: `WebGPU adapter request failed: ${e}` };
  }
}

async function loadModel(id) {
  if (state.models.has(id)) return state.models.get(id);
  const entry = MODELS.find((m) => m.id === id);
  const t0 = performance.now();
  const resp = await fetch(entry.file);
  if (!resp.ok) throw new Error(`could not fetch the model file ${entry.file} (HTTP ${resp.status})`);
  const bytes = new Uint8Array(await resp.arrayBuffer());
  const tFetch = performance.now() - t0;
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
      notice(`WebGPU failed (${e.message || e}); running on the CPU instead.`);
    }
  }
  if (!model) model = await state.wasm.Model.load(bytes, "cpu");
  const loaded = { model, manifest: model.manifest(), bytes: bytes.length, fetchMs: tFetch, initMs: performance.now() - t1 };
  state.models.set(id, loaded);
  return loaded;
}

function fmt(v, digits = 3) { return typeof v === "number" ? v.toFixed(digits) : "–"; }

function describeModel(m) {
  const info = $("model-info");
  const mf = m.manifest;
  info.replaceChildren();
  const p = document.createElement("p");
  p.textContent = `${mf.name}: ${mf.classes.map((c) => c.name).join(", ")}; ${mf.tile_size} px tiles at ${mf.um_per_px} µm/px; ${(m.bytes / 1e6).toFixed(2)} MB.`;
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
  if (mf.provenance) {
    const d = document.createElement("details");
    const sum = document.createElement("summary");
    sum.textContent = "How it was trained";
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
  const legend = $("legend");
  legend.replaceChildren();
  mf.classes.forEach((c, i) => {
    if (i === 0) return;
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.style.background = `rgb(${c.color.join(",")})`;
    li.append(sw, c.name);
    legend.append(li);
  });
}

function drawImage(img) {
  const canvas = $("image");
  canvas.width = img.width;
  canvas.height = img.height;
  const data = new ImageData(new Uint8ClampedArray(img.rgba()), img.width, img.height);
  canvas.getContext("2d").putImageData(data, 0, 0);
  const ov = $("overlay");
  ov.width = img.width;
  ov.height = img.height;
  ov.getContext("2d").clearRect(0, 0, ov.width, ov.height);
}

async function openBytes(bytes, name) {
  clearError();
  let img;
  const t0 = performance.now();
  try {
    img = state.wasm.decodeImage(bytes);
  } catch (e) {
    // keep whatever image and mask the user already has
    showError(`Cannot open ${name}: ${e.message || e}`);
    return;
  }
  const decodeMs = performance.now() - t0;
  if (state.running) state.running.cancelled = true;
  state.image = img;
  drawImage(img);
  await segment({ decodeMs, name });
}

async function segment(info) {
  const m = await loadModel($("model").value);
  describeModel(m);
  const img = state.image;
  const run = { cancelled: false };
  state.running = run;
  $("cancel").disabled = false;
  setStatus("segmenting");
  const umText = $("umpp").value.trim();
  const um = umText === "" ? undefined : Number(umText);
  let job;
  try {
    job = m.model.segment(img, um);
  } catch (e) {
    showError(`Cannot segment: ${e.message || e}`);
    setStatus("error");
    state.running = null;
    $("cancel").disabled = true;
    return;
  }
  const progress = $("progress");
  progress.max = job.total;
  progress.value = 0;
  const tileMs = [];
  const t0 = performance.now();
  try {
    for (;;) {
      if (run.cancelled) { job.free(); setStatus("cancelled"); return; }
      const ts = performance.now();
      const done = await job.step(1);
      tileMs.push(performance.now() - ts);
      progress.value = job.done;
      if (done) break;
    }
  } catch (e) {
    showError(`Segmentation failed: ${e.message || e}`);
    setStatus("error");
    return;
  } finally {
    if (state.running === run) { state.running = null; $("cancel").disabled = true; }
  }
  const inferMs = performance.now() - t0;
  const tiles = job.total;
  const t1 = performance.now();
  const result = job.finish();
  const blendMs = performance.now() - t1;
  const t2 = performance.now();
  const ov = $("overlay");
  const overlay = new ImageData(new Uint8ClampedArray(result.overlayRgba()), result.width, result.height);
  ov.getContext("2d").putImageData(overlay, 0, 0);
  ov.style.opacity = $("opacity").value;
  const overlayMs = performance.now() - t2;
  const mean = tileMs.reduce((a, b) => a + b, 0) / tileMs.length;
  const backend = m.model.backend === "webgpu"
    ? `WebGPU${state.adapterInfo ? ` (${[state.adapterInfo.vendor, state.adapterInfo.architecture].filter(Boolean).join(" ")})` : ""}`
    : "CPU (burn flex)";
  setStats([
    ["backend", backend],
    ["image", `${result.width}×${result.height} px, ${tiles} tiles of ${m.manifest.tile_size} px`],
    ["model fetch", `${m.fetchMs.toFixed(0)} ms`],
    ["model init", `${m.initMs.toFixed(0)} ms`],
    ["decode", `${(info.decodeMs ?? 0).toFixed(0)} ms`],
    ["inference", `${inferMs.toFixed(0)} ms (${mean.toFixed(0)} ms/tile)`],
    ["blend + labels", `${blendMs.toFixed(0)} ms`],
    ["overlay", `${overlayMs.toFixed(0)} ms`],
    ...m.manifest.classes.map((c, i) => [`${c.name} area`, `${(100 * result.classAreas()[i] / (result.width * result.height)).toFixed(1)} %`]),
  ]);
  window.histoseg.lastResult = {
    width: result.width,
    height: result.height,
    labels: Array.from(result.labels()),
    backend: m.model.backend,
    adapter: state.adapterInfo,
    tiles,
    msPerTile: mean,
    timings: { fetchMs: m.fetchMs, initMs: m.initMs, decodeMs: info.decodeMs, inferMs, blendMs, overlayMs },
  };
  result.free();
  setStatus("done");
}

async function main() {
  try {
    state.wasm = await wasmBindings();
  } catch (e) {
    showError(`The viewer could not start: ${e}`);
    return;
  }
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
      const m = await loadModel(select.value);
      describeModel(m);
      if (state.image && !state.running) await segment({});
    } catch (e) {
      showError(`The model could not be loaded: ${e.message || e}`);
    }
  });
  $("file").addEventListener("change", async (ev) => {
    const f = ev.target.files[0];
    if (f) await openBytes(new Uint8Array(await f.arrayBuffer()), f.name);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    drop.classList.remove("over");
    const f = ev.dataTransfer.files[0];
    if (f) await openBytes(new Uint8Array(await f.arrayBuffer()), f.name);
  });
  $("sample").addEventListener("click", async () => {
    const resp = await fetch(SAMPLE);
    await openBytes(new Uint8Array(await resp.arrayBuffer()), SAMPLE);
  });
  $("opacity").addEventListener("input", (ev) => { $("overlay").style.opacity = ev.target.value; });
  $("cancel").addEventListener("click", () => { if (state.running) state.running.cancelled = true; });
  try {
    const m = await loadModel(select.value);
    describeModel(m);
    setStatus("ready");
  } catch (e) {
    showError(`The model could not be loaded: ${e.message || e}`);
    setStatus("error");
  }
}

main();
