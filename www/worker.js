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
import { WorkerClient } from "./worker_client.js";
import * as kept from "./kept.js";

const started = init({ module_or_path: new URL("histoseg_bg.wasm", import.meta.url) });
const message = (e) => (e && e.message) || String(e);
const post = (event) => self.postMessage(event);
const notice = (text) => post({ event: "notice", text });

let slide = null;          // wasm Slide
let openedFile = null;     // { name, size, lastModified } of the file it was opened from: they key kept results
const models = new Map();  // id -> { model, manifest, bytes, fetchMs, initMs }
const modelSources = new Map(); // id -> { url } or { bytes }: to load a model again on the CPU
let running = null;        // { cancelled, why, finished: Promise }
// The results shown, oldest first, each { id, res: wasm SegResult }; the last is "the result" that
// the statistics and the downloads are of. Regions segmented one after another are all shown.
let results = [];
let resultSerial = 0;
// level-0 pixels of region results held at once; beyond that the oldest go (a streamed slide's
// result is a compressed pyramid, and replaces every region it covers)
const MAX_HELD_PIXELS = 64e6;
const current = () => results.at(-1)?.res ?? null;
const byId = (id) => (id == null ? current() : results.find((r) => r.id === id)?.res ?? null);
function freeResults() {
  for (const r of results) r.res.free();
  results = [];
}
// Shows `res` beside the results already shown: those it covers whole go, then the oldest while
// more than MAX_HELD_PIXELS are held. Returns its id and the ids that went.
function addResult(res) {
  const inside = (a, b) => a.x >= b.x && a.y >= b.y && a.x + a.width <= b.x + b.width && a.y + a.height <= b.y + b.height;
  const dropped = [];
  const drop = (r) => { r.res.free(); dropped.push(r.id); };
  results = results.filter((r) => (inside(r.res, res) ? (drop(r), false) : true));
  const id = ++resultSerial;
  results.push({ id, res });
  const held = () => results.reduce((n, r) => n + (r.res.tiled ? 0 : r.res.width * r.res.height), 0);
  while (results.length > 1 && held() > MAX_HELD_PIXELS) drop(results.shift());
  return { id, dropped };
}
let backendPref = null;    // "cpu" forces the CPU
let webgpu = null;         // { usable, why, adapter } once probed
let modelSerial = 0;

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
  const loaded = { model, manifest: model.manifest(), raw: bytes, serial: ++modelSerial, bytes: bytes.length, fetchMs, initMs: 0 };
  if (model.backend === "cpu" && CPU_HELPERS > 0) {
    // the pool's workers start with the model, so a run (and its first tile) does not wait for them
    try {
      await cpuHelpers(loaded);
    } catch (e) {
      console.warn(`running on one CPU worker: ${message(e)}`);
      CPU_HELPERS = 0;
    }
  }
  loaded.initMs = performance.now() - t1;
  models.set(id, loaded);
  return loaded;
}

const describe = (m) => ({ manifest: m.manifest, backend: m.model.backend, bytes: m.bytes, fetchMs: m.fetchMs, initMs: m.initMs, adapter: webgpu?.adapter ?? null });

// The CPU pool: on the CPU a run is shared between this worker and `CPU_HELPERS` more workers
// (this same script), each with its own copy of the model, fed one tile at a time. Their answers
// are blended in tile order, so the mask is the same as one worker's.
// The page's `?cpu-workers=N` sets the pool's size (the benchmark compares sizes).
let CPU_HELPERS = Math.max(0, Math.min(7, (navigator.hardwareConcurrency || 1) - 1));
const helpers = []; // { client: WorkerClient, serial of the model it holds }

// The helpers, each with model `m` loaded on its CPU (loaded once per model).
async function cpuHelpers(m) {
  while (helpers.length < CPU_HELPERS) helpers.push({ client: new WorkerClient("cpu-helper"), serial: null });
  const pool = helpers.slice(0, CPU_HELPERS);
  await Promise.all(pool.map(async (h) => {
    if (h.serial === m.serial) return;
    await h.client.call("helperModel", { bytes: m.raw });
    h.serial = m.serial;
  }));
  return pool;
}

// Runs every tile of `job` on this worker and the helpers; `onTile` after each tile is blended.
// Returns false if cancelled.
async function runPooled(job, m, run, onTile) {
  const runners = [{ run: (b) => m.model.run(b.planar, b.count) }];
  for (const h of await cpuHelpers(m)) {
    runners.push({ run: (b) => h.client.call("helperRun", { planar: b.planar, count: b.count }, [b.planar.buffer]) });
  }
  const early = new Map(); // start -> { meta, probs }: answers waiting for their turn
  const busy = new Set();
  let failure = null;
  let signalled = false;
  let wake = null;
  const notify = () => { signalled = true; if (wake) { wake(); wake = null; } };
  const start = (runner) => {
    const batch = job.takeBatch(1);
    if (!batch) return;
    const meta = { start: batch.start, tiles: batch.tiles, count: batch.count };
    const task = (async () => {
      // a macrotask between tiles: this worker's own tiles run synchronously, and without it their
      // chain of promises would keep the helpers' answers, cancel and the loop below waiting
      await yieldToMessages();
      early.set(meta.start, { meta, probs: await runner.run(batch) });
    })()
      .catch((e) => { failure = failure || e; })
      .finally(() => {
        busy.delete(task);
        if (!failure && !run.cancelled) start(runner);
        notify();
      });
    busy.add(task);
  };
  for (const r of runners) start(r);
  for (;;) {
    for (let next = job.done; early.has(next); next = job.done) {
      const { meta, probs } = early.get(next);
      early.delete(next);
      onTile(job.acceptBatch(meta.start, meta.tiles, meta.count, probs));
    }
    if (failure) { await Promise.allSettled([...busy]); throw failure; }
    if (run.cancelled) { await Promise.allSettled([...busy]); return false; }
    if (busy.size === 0) break;
    if (!signalled) await new Promise((r) => { wake = r; });
    signalled = false;
    await yieldToMessages();
  }
  return job.done === job.total;
}

// The label mask PNG at full resolution, made a band of rows at a time into a Blob: a slide's
// mask of any size, with this worker holding one band and the browser the Blob (which it may keep
// on disk). Between bands other messages are answered; a result dropped meanwhile ends the export.
async function labelPngBlob(result) {
  const png = result.labelPng();
  try {
    let blob = new Blob([]), parts = [], held = 0;
    while (!png.done) {
      if (!results.some((r) => r.res === result)) throw new Error("the result was replaced while its label mask was being written");
      const piece = png.next(result);
      parts.push(piece);
      held += piece.length;
      if (held > 16e6) { blob = new Blob([blob, ...parts]); parts = []; held = 0; }
      await yieldToMessages();
    }
    return new Blob([blob, ...parts], { type: "image/png" });
  } finally {
    png.free();
  }
}

// Lets messages (cancel, exports, a new image) in between tiles.
const yieldToMessages = () => new Promise((r) => setTimeout(r, 0));

async function segment({ modelId, region, umPerPx, tta, style }) {
  if (!slide) throw new Error("no image is open");
  if (running) {
    // a run cancelled by opening another image finishes its current tile first
    if (!running.cancelled) throw new Error("a segmentation is already running");
    await running.finished;
  }
  let m, job, streamed = false;
  try {
    m = await loadModel(modelId);
  } catch (e) {
    throw Object.assign(new Error(`The model could not be loaded: ${message(e)}`), { whole: true });
  }
  try {
    // "best": every tile in the eight flips and 90° rotations, averaged (test-time augmentation)
    // a whole slide file is streamed in bands, its tissue found on a thumbnail (as the CLI's
    // `segment --stream`); a region, or a plain image, is segmented in memory
    const whole = region.x === 0 && region.y === 0 && region.width === slide.width && region.height === slide.height;
    streamed = whole && /TIFF|SVS/.test(slide.format);
    job = streamed
      ? m.model.segmentWhole(slide, umPerPx, tta)
      : m.model.segment(slide, region.x, region.y, region.width, region.height, umPerPx, tta);
  } catch (e) {
    throw Object.assign(new Error(`Cannot segment: ${message(e)}`), { whole: true });
  }
  const total = job.total;
  const glassTiles = job.glassTiles;
  let finish;
  const run = { cancelled: false, why: "", finished: new Promise((r) => { finish = r; }) };
  running = run;
  // a cancelled run frees its job and says how far it got
  const stopped = () => {
    const out = { cancelled: true, done: job.done, total, why: run.why };
    job.free();
    return out;
  };
  const t0 = performance.now();
  let gpuLostAtTile = null;
  // a streamed whole slide's rows are drawn as they are labelled, before the run ends: rows of
  // its overview (every step-th row and column, about 1.5 MP), drawn without a long task
  const postRows = () => {
    const part = streamed && style && job.newRows(...styleArgs(style));
    if (part) self.postMessage({ event: "rows", step: part.step, y: part.y, height: part.height, width: part.width, rgba: part.rgba }, [part.rgba.buffer]);
  };
  try {
    post({ event: "progress", done: 0, total: job.total, elapsedMs: 0 });
    if (m.model.backend === "cpu" && CPU_HELPERS > 0) {
      const finished = await runPooled(job, m, run, (blending) => {
        post({ event: "progress", done: job.done, total, elapsedMs: performance.now() - t0, blending });
        postRows();
      });
      if (!finished) return stopped();
    }
    while (job.done < total) {
      await yieldToMessages();
      if (run.cancelled) return stopped();
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
      post({ event: "progress", done: job.done, total: job.total, elapsedMs: performance.now() - t0, blending: done });
      postRows();
      if (done) break;
    }
    // a new image arrived while the last tile ran: its result is not wanted
    if (run.cancelled) return stopped();
    const inferMs = performance.now() - t0;
    const workers = m.model.backend === "cpu" ? 1 + CPU_HELPERS : 1;
    const t1 = performance.now();
    const res = job.finish();
    job.free();
    const blendMs = performance.now() - t1;
    const { id, dropped } = addResult(res);
    const isKept = await keepResult(res, modelId, umPerPx, { tiles: total, glassTiles, backend: m.model.backend });
    return {
      ...summary(res), id, dropped, kept: isKept, cancelled: false,
      backend: m.model.backend, workers, tiles: total, glassTiles, msPerTile: inferMs / Math.max(1, total),
      gpuLostAtTile, inferMs, blendMs,
    };
  } catch (e) {
    try { job.free(); } catch { /* already consumed */ }
    throw e;
  } finally {
    if (running === run) running = null;
    finish();
  }
}

// The "Train your own" session on the open image: { teacher: wasm Teacher, modelId, backend }.
let teaching = null;
function stopTeaching() {
  if (teaching) teaching.teacher.free();
  teaching = null;
}
function teachingNow() {
  if (!teaching) throw new Error("the \"Train your own\" mode is not open");
  return teaching;
}
async function teachPreview(t, view) {
  const t0 = performance.now();
  const preview = await t.teacher.preview(view.x, view.y, view.x + view.width, view.y + view.height);
  return { preview, previewMs: performance.now() - t0 };
}

// What the page shows of a result (a wasm SegResult), whether it was just run or restored.
// `levels`: what the overlay can be drawn at (a streamed slide's label pyramid; a region's one
// level); `overlayDownsample`: the overlay PNG's scale (the label mask is at full resolution).
const summary = (res) => ({
  x: res.x, y: res.y, width: res.width, height: res.height, classAreas: Array.from(res.classAreas()), objects: res.objectCount(),
  levels: res.levels(), overlayDownsample: res.overlayDownsample,
});

// A finished result is kept in this browser's storage (kept.js) and found again after a reload.
// Results of an own model file are not: the file itself is not kept.
async function keepResult(res, modelId, umPerPx, about) {
  if (!openedFile || !modelSources.get(modelId)?.url) return false;
  try {
    await kept.keep({
      key: kept.keyOf(openedFile, modelId, res), fileKey: kept.keyOf(openedFile, modelId), name: openedFile.name, modelId,
      x: res.x, y: res.y, width: res.width, height: res.height, umPerPx: umPerPx ?? null, raw: res.keptBytes(), tiled: res.tiled, ...about,
    });
    return true;
  } catch (e) {
    notice(`The result could not be kept in this browser's storage (${message(e)}); it is shown, but a reload will lose it.`);
    return false;
  }
}

function styleArgs({ colors, visible }) {
  return [new Uint8Array(colors), new Uint8Array(visible)];
}

const OPS = {
  async init({ backend, cpuWorkers }) {
    await started;
    backendPref = backend;
    if (cpuWorkers >= 1) CPU_HELPERS = Math.min(15, Math.floor(cpuWorkers) - 1);
    return {};
  },

  // A File (or Blob) from the page: a TIFF or SVS is read lazily, so a slide of any size opens by
  // reading its header. The open image and result are replaced only once the new one opened.
  async open({ blob, name }) {
    await started;
    const t0 = performance.now();
    const opened = wasm.Slide.openBlob(blob);
    const openMs = performance.now() - t0;
    if (running) { running.cancelled = true; running.why = "a new image was opened"; }
    freeResults();
    stopTeaching();
    if (slide) slide.free();
    slide = opened;
    // a sample comes as a Blob, with its name beside it
    openedFile = { name: name ?? blob.name ?? "", size: blob.size, lastModified: blob.lastModified ?? null };
    return { width: slide.width, height: slide.height, format: slide.format, note: slide.note ?? null, umPerPx: slide.umPerPx ?? null, levels: slide.levels(), openMs, bytesRead: slide.bytesRead };
  },

  async close() {
    freeResults();
    stopTeaching();
    if (slide) { slide.free(); slide = null; }
    openedFile = null;
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

  // the results kept for the open file and `modelId` (kept.js), made again, oldest first (the
  // newest is then the current result); [] if there are none
  async restore({ modelId }) {
    if (!openedFile || !slide || running) return [];
    const entries = await kept.findAll(kept.keyOf(openedFile, modelId));
    if (!entries.length || running) return [];
    const m = await loadModel(modelId);
    const out = [];
    for (const entry of entries) {
      const res = entry.tiled
        ? m.model.restoreTiled(entry.raw, entry.x, entry.y, entry.umPerPx ?? undefined)
        : m.model.restore(entry.raw, entry.x, entry.y, entry.width, entry.height, entry.umPerPx ?? undefined);
      const { id, dropped } = addResult(res);
      out.push({ ...summary(res), id, dropped, savedAt: entry.savedAt, tiles: entry.tiles, glassTiles: entry.glassTiles, backend: entry.backend, umPerPx: entry.umPerPx });
    }
    return out;
  },

  async kept() { return kept.list(); },

  async forget() { await kept.forget(); return {}; },

  // a result's overlay (`id`, or the current result's) whole, at its coarsest level
  async overlay({ id, ...style }) {
    const result = byId(id);
    if (!result) throw new Error("nothing has been segmented");
    const rgba = result.overlay(...styleArgs(style), style.contour);
    return { value: rgba, transfer: [rgba.buffer] };
  },

  // a rectangle of a finer level (its pixels, from the result's origin): the view, zoomed in
  async overlayRegion({ id, level, x, y, width, height, ...style }) {
    const result = byId(id);
    if (!result) throw new Error("nothing has been segmented");
    const rgba = result.overlayRegion(level, x, y, width, height, ...styleArgs(style), style.contour);
    return { value: rgba, transfer: [rgba.buffer] };
  },

  async labels() {
    const result = current();
    if (!result) return null;
    const labels = result.labels();
    return { value: labels, transfer: [labels.buffer] };
  },

  // the downloads are of the current result
  async export({ kind, opacity, ...style }) {
    const result = current();
    if (!result) throw new Error("nothing has been segmented");
    switch (kind) {
      case "labels": return labelPngBlob(result);
      case "overlay": return result.overlayPng(slide, opacity, ...styleArgs(style), style.contour);
      case "geojson": return result.geojson();
      case "csv": return result.measurementsCsv();
      case "json": return result.measurementsJson();
      default: throw new Error(`unknown export '${kind}'`);
    }
  },

  // "Train your own" (teach.js): a head taught from strokes on the open image, on the frozen
  // UNet of model `modelId`, on this worker's device (WebGPU, or the CPU)
  async teachStart({ modelId, umPerPx }) {
    if (!slide) throw new Error("open an image first");
    stopTeaching();
    const m = await loadModel(modelId);
    teaching = { teacher: m.model.teach(slide, umPerPx ?? undefined), modelId, backend: m.model.backend };
    return { backend: m.model.backend };
  },

  // the strokes so far (GeoJSON); their tiles' features, then, with `train`, one update of the
  // head, and the preview of the level-0 `view`, with the time each part took
  async teachUpdate({ geojson, view, train }) {
    const t = teachingNow();
    const t0 = performance.now();
    const tiles = t.teacher.setStrokes(geojson);
    for (let left = tiles; left > 0;) left = await t.teacher.computeTiles(2);
    const t1 = performance.now();
    const loss = train ? await t.teacher.train() : null;
    const t2 = performance.now();
    const out = { tiles, loss, featuresMs: t1 - t0, trainMs: t2 - t1, backend: t.backend };
    if (train && view) Object.assign(out, await teachPreview(t, view));
    return out.preview ? { value: out, transfer: [out.preview.labels.buffer, out.preview.uncertainty.buffer] } : out;
  },

  // the preview of another view (after panning or zooming), with the head as it is
  async teachPreview({ view }) {
    const out = await teachPreview(teachingNow(), view);
    return { value: out, transfer: [out.preview.labels.buffer, out.preview.uncertainty.buffer] };
  },

  // the taught model: its bytes (a normal .histoseg file), kept in this browser's storage too
  async teachSave({ name, id }) {
    const bytes = await teachingNow().teacher.modelBytes(name);
    let keptIt = true;
    try {
      await kept.keepModel({ id, name, bytes });
    } catch (e) {
      keptIt = false;
      notice(`The model could not be kept in this browser's storage (${message(e)}); save the downloaded file.`);
    }
    return { value: { bytes, kept: keptIt }, transfer: [bytes.buffer] };
  },

  // the strokes with the updates made (GeoJSON: QuPath opens it, `histoseg train --strokes` replays it)
  async teachStrokes() { return teachingNow().teacher.strokesGeojson(); },

  // strokes from a file, in our GeoJSON form with the class list (any error says what is wrong)
  async strokesFromGeojson({ text }) { await started; return wasm.strokesFromGeojson(text); },

  async teachStop() { stopTeaching(); return {}; },

  // the models kept by teachSave: [{ id, name, bytes }]
  async keptModels() { return kept.keptModels(); },

  // a CPU helper of the pool: its own copy of the model, and one batch at a time
  async helperModel({ bytes }) {
    await started;
    if (self.helperModel) self.helperModel.free();
    self.helperModel = await wasm.Model.load(bytes, "cpu");
    return {};
  },
  async helperRun({ planar, count }) {
    const probs = await self.helperModel.run(planar, count);
    return { value: probs, transfer: [probs.buffer] };
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
