// The worker that owns the wasm module: the open slide (read lazily from the user's File), the
// models, the WebGPU device and the running segmentation. The page talks to it only by messages
// (worker_client.js), so decoding and inference never block drawing or input. The page starts two
// of these: one answers the viewer's display tiles, the other segments and exports, so panning
// stays fluid while a tile is on the CPU.
//
// Requests are { id, op, args }; replies { id, ok, value } or { id, ok: false, error }; unprompted
// events are { event, ... } (progress, notices). Nothing here makes a request other than for this
// site's own files (the wasm module and the model files).
import init, * as wasm from "./histoseg.js";

const started = init({ module_or_path: new URL("histoseg_bg.wasm", import.meta.url) });
const message = (e) => (e && e.message) || String(e);
const post = (event) => self.postMessage(event);
const notice = (text) => post({ event: "notice", text });

let slide = null;          // wasm Slide
const models = new Map();  // id -> { model, manifest, bytes, fetchMs, initMs }
const modelSources = new Map(); // id -> { url } or { bytes }: to load a model again on the CPU
let running = null;        // { cancelled, why, finished: Promise }
let result = null;         // wasm SegResult of the last finished run
let backendPref = null;    // "cpu" forces the CPU
let webgpu = null;         // { usable, why, adapter } once probed

// burn creates its WebGPU device inside wasm; watching requestDevice lets the worker learn when
// that device is lost (driver reset, GPU removed, device.destroy()) and move work to the CPU.
let gpuLostResolve;
const gpuLost = new Promise((resolve) => { gpuLostResolve = resolve; });
if (globalThis.GPUAdapter && GPUAdapter.prototype.requestDevice) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    device.lost.then((info) => gpuLostResolve(info.message || info.reason || "the device was lost"));
    return device;
  };
}
gpuLost.then((why) => {
  if (webgpu) webgpu.usable = false;
  // models built on the lost device are dropped; the next use loads them on the CPU
  for (const [id, m] of models) if (m.model.backend === "webgpu") models.delete(id);
  notice(`The GPU stopped working (${why}); continuing on the CPU. Work already done is kept.`);
});

async function probeWebGPU() {
  if (backendPref === "cpu") return { usable: false, why: "CPU requested in the address (?backend=cpu)" };
  if (!("gpu" in navigator) || !navigator.gpu) return { usable: false, why: "this browser has no WebGPU" };
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { usable: false, why: "no WebGPU adapter is available" };
    const info = adapter.info || {};
    return { usable: true, adapter: { vendor: info.vendor || "", architecture: info.architecture || "", description: info.description || "" } };
  } catch (e) {
    return { usable: false, why: `WebGPU adapter request failed: ${message(e)}` };
  }
}

async function modelBytes(id) {
  const source = modelSources.get(id);
  if (!source) throw new Error(`no model '${id}'`);
  if (source.bytes) return { bytes: source.bytes, fetchMs: 0 };
  const t0 = performance.now();
  const resp = await fetch(source.url);
  if (!resp.ok) throw new Error(`could not fetch the model file ${source.url} (HTTP ${resp.status})`);
  return { bytes: new Uint8Array(await resp.arrayBuffer()), fetchMs: performance.now() - t0 };
}

async function loadModel(id) {
  if (models.has(id)) return models.get(id);
  const { bytes, fetchMs } = await modelBytes(id);
  if (webgpu === null) {
    webgpu = await probeWebGPU();
    if (!webgpu.usable) notice(`Running on the CPU: ${webgpu.why}.`);
  }
  let model;
  const t1 = performance.now();
  if (webgpu.usable) {
    try {
      model = await wasm.Model.load(bytes, "webgpu");
    } catch (e) {
      webgpu.usable = false;
      notice(`WebGPU failed (${message(e)}); running on the CPU instead.`);
    }
  }
  if (!model) model = await wasm.Model.load(bytes, "cpu");
  const loaded = { model, manifest: model.manifest(), bytes: bytes.length, fetchMs, initMs: performance.now() - t1 };
  models.set(id, loaded);
  return loaded;
}

const describe = (m) => ({ manifest: m.manifest, backend: m.model.backend, bytes: m.bytes, fetchMs: m.fetchMs, initMs: m.initMs, adapter: webgpu?.adapter ?? null });

// Lets messages (cancel, exports, a new image) in between tiles.
const yieldToMessages = () => new Promise((r) => setTimeout(r, 0));

async function segment({ modelId, region, umPerPx, tta }) {
  if (!slide) throw new Error("no image is open");
  if (running) {
    // a run cancelled by opening another image finishes its current tile first
    if (!running.cancelled) throw new Error("a segmentation is already running");
    await running.finished;
  }
  let m, job;
  try {
    m = await loadModel(modelId);
  } catch (e) {
    throw Object.assign(new Error(`The model could not be loaded: ${message(e)}`), { whole: true });
  }
  try {
    // "best": every tile in the eight flips and 90° rotations, averaged (test-time augmentation)
    job = m.model.segment(slide, region.x, region.y, region.width, region.height, umPerPx, tta);
  } catch (e) {
    throw Object.assign(new Error(`Cannot segment: ${message(e)}`), { whole: true });
  }
  const total = job.total;
  let finish;
  const run = { cancelled: false, why: "", finished: new Promise((r) => { finish = r; }) };
  running = run;
  const tileMs = [];
  const t0 = performance.now();
  let gpuLostAtTile = null;
  try {
    post({ event: "progress", done: 0, total: job.total, elapsedMs: 0 });
    for (;;) {
      await yieldToMessages();
      if (run.cancelled) {
        const out = { cancelled: true, done: job.done, total: job.total, why: run.why };
        job.free();
        return out;
      }
      const ts = performance.now();
      const lost = m.model.backend === "webgpu" ? gpuLost.then(() => "lost") : new Promise(() => {});
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
        gpuLostAtTile = job.done;
        m = await loadModel(modelId);
        job.useModel(m.model);
        post({ event: "progress", done: job.done, total: job.total, elapsedMs: performance.now() - t0, gpuLost: true });
        continue;
      }
      if (run.cancelled) continue;
      tileMs.push(performance.now() - ts);
      post({ event: "progress", done: job.done, total: job.total, elapsedMs: performance.now() - t0, blending: done });
      if (done) break;
    }
    const inferMs = performance.now() - t0;
    const t1 = performance.now();
    const res = job.finish();
    job.free();
    const blendMs = performance.now() - t1;
    if (result) result.free();
    result = res;
    return {
      cancelled: false, x: res.x, y: res.y, width: res.width, height: res.height,
      backend: m.model.backend, tiles: total, msPerTile: tileMs.reduce((a, b) => a + b, 0) / Math.max(1, tileMs.length),
      gpuLostAtTile, classAreas: Array.from(res.classAreas()), objects: res.objectCount(), inferMs, blendMs,
    };
  } catch (e) {
    try { job.free(); } catch { /* already consumed */ }
    throw e;
  } finally {
    if (running === run) running = null;
    finish();
  }
}

function styleArgs({ colors, visible }) {
  return [new Uint8Array(colors), new Uint8Array(visible)];
}

const OPS = {
  async init({ backend }) { await started; backendPref = backend; return {}; },

  // A File (or Blob) from the page: a TIFF or SVS is read lazily, so a slide of any size opens by
  // reading its header. The open image and result are replaced only once the new one opened.
  async open({ blob }) {
    await started;
    const t0 = performance.now();
    const opened = wasm.Slide.openBlob(blob);
    const openMs = performance.now() - t0;
    if (running) { running.cancelled = true; running.why = "a new image was opened"; }
    if (result) { result.free(); result = null; }
    if (slide) slide.free();
    slide = opened;
    return { width: slide.width, height: slide.height, format: slide.format, note: slide.note ?? null, umPerPx: slide.umPerPx ?? null, levels: slide.levels(), openMs, bytesRead: slide.bytesRead };
  },

  async close() {
    if (result) { result.free(); result = null; }
    if (slide) { slide.free(); slide = null; }
    return {};
  },

  async region({ level, x, y, width, height }) {
    if (!slide) throw new Error("no image is open");
    const rgba = slide.region(level, x, y, width, height);
    return { value: rgba, transfer: [rgba.buffer] };
  },

  async model({ id, url, bytes }) {
    await started;
    if (bytes) { modelSources.set(id, { bytes }); models.delete(id); }
    else if (!modelSources.has(id)) modelSources.set(id, { url });
    try {
      return describe(await loadModel(id));
    } catch (e) {
      if (bytes) modelSources.delete(id);
      throw e;
    }
  },

  segment,

  async cancel() { if (running) running.cancelled = true; return {}; },

  async overlay(args) {
    if (!result) throw new Error("nothing has been segmented");
    const rgba = result.overlay(...styleArgs(args), args.contour);
    return { value: rgba, transfer: [rgba.buffer] };
  },

  async labels() {
    if (!result) return null;
    const labels = result.labels();
    return { value: labels, transfer: [labels.buffer] };
  },

  async export({ kind, opacity, ...style }) {
    if (!result) throw new Error("nothing has been segmented");
    switch (kind) {
      case "labels": return result.labelPng();
      case "overlay": return result.overlayPng(slide, opacity, ...styleArgs(style), style.contour);
      case "geojson": return result.geojson();
      case "csv": return result.measurementsCsv();
      case "json": return result.measurementsJson();
      default: throw new Error(`unknown export '${kind}'`);
    }
  },

  // the wasm linear memory in bytes (it only grows), for the statistics and the memory tests
  async memory() { return (await started).memory.buffer.byteLength; },
};

self.onmessage = async (ev) => {
  const { id, op, args } = ev.data;
  try {
    const handler = OPS[op];
    if (!handler) throw new Error(`unknown request '${op}'`);
    const out = await handler(args || {});
    if (out && Array.isArray(out.transfer)) self.postMessage({ id, ok: true, value: out.value }, out.transfer);
    else self.postMessage({ id, ok: true, value: out });
  } catch (e) {
    // `whole`: the message is complete for the user as it is
    self.postMessage({ id, ok: false, error: message(e), whole: Boolean(e && e.whole) });
  }
};
