// A segmentation run as the user sees it: starting it (the region, the resolution, the quality),
// its progress and time left, cancelling, the statistics of the result, a result kept in this
// browser shown again, and the downloads.
import { $, state, report, setStatus, showError, clearError, notice, message, setStats, setBusy, formatDuration } from "./page.js";
import { loadModel, userModels, buildLegend } from "./models.js";
import { renderOverlay, dropPartial } from "./overlay_layer.js";
import { download, exportName } from "./exports.js";

export function resolutionInput() {
  const text = $("umpp").value.trim();
  if (text === "") return undefined;
  const v = Number(text);
  if (!(v > 0) || !Number.isFinite(v)) throw new Error(`the resolution must be a positive number of µm per pixel, not "${text}"`);
  return v;
}

// A finished result is kept in this browser (kept.js, in the compute worker); when the same file
// is opened again with the same model, after a reload or another day, it is shown again.
export async function restoreKept() {
  try {
    await restoreKeptNow();
  } finally {
    report("restoreChecked");
  }
}

async function restoreKeptNow() {
  const modelId = $("model").value;
  const image = state.image;
  if (userModels.has(modelId)) return;
  let all, m;
  try {
    all = await state.compute.call("restore", { modelId });
    if (all.length) m = await loadModel(modelId);
  } catch (e) {
    console.warn(`the kept result could not be restored: ${message(e)}`);
    return;
  }
  // another image, a run or a result came first
  if (!all.length || state.image !== image || state.running || state.result) return;
  // every kept region is shown; the newest is the current result
  for (const out of all) showResult({ modelId, manifest: m.manifest, name: image.name, ...out });
  const out = all.at(-1);
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
  for (const r of all) report("restored", { name: image.name, savedAt: r.savedAt });
  report("result", {
    x: out.x, y: out.y, width: out.width, height: out.height, restored: true, savedAt: out.savedAt,
    backend: out.backend, tiles: out.tiles, classAreas: out.classAreas, objects: out.objects,
  });
  // the status stays "opened": the image is open, and nothing ran
}

// `out` (a run's or a restored result, from the compute worker) becomes the current result; the
// one before stays shown unless the worker let it go (`out.dropped`: covered by the new one, or
// the oldest beyond what it holds).
function showResult(out) {
  const { modelId, manifest, name, id, x, y, width, height, levels, overlayDownsample } = out;
  state.shown = [...state.shown, state.result].filter((r) => r && !out.dropped.includes(r.id));
  state.result = { modelId, manifest, name, id, x, y, width, height, levels, overlayDownsample };
}

// Per-class area rows of the statistics: the share of the region, and mm² when µm/px is known.
function classStats(mf, areas, total, um) {
  return mf.classes.map((c, i) => [c, i]).filter(([, i]) => i > 0 && i !== mf.postprocess?.boundary_class).map(([c, i]) => [`${c.name}`,
    `${(100 * areas[i] / total).toFixed(1)} %${um ? `, ${(areas[i] * um * um / 1e6).toFixed(3)} mm²` : ""}`]);
}

// Progress events of the running segmentation, from the compute worker.
export function showProgress(p) {
  if (!state.running || state.running.cancelled) return;
  const progress = $("progress"), text = $("progress-text");
  progress.max = p.total;
  progress.value = p.done;
  if (p.gpuLost) { text.textContent = `${p.done} / ${p.total} tiles; the GPU was lost, continuing on the CPU…`; return; }
  if (p.done === 0) { text.textContent = `0 / ${p.total} tiles`; return; }
  const eta = (p.elapsedMs / p.done) * (p.total - p.done);
  text.textContent = `${p.done} / ${p.total} tiles, ${p.blending ? "blending…" : `about ${formatDuration(eta)} left`}`;
}

export async function segment(region) {
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
  const before = document.body.dataset.status;
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
    report("cancelled", text);
    setStatus("cancelled");
    return;
  }
  // the backend the run ended on (the GPU may have been lost on the way)
  m = state.models.get(modelId) || m;
  showResult({ modelId, manifest: m.manifest, name, ...out });
  report("drawn", name);
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
  report("result", {
    x: out.x, y: out.y, width: out.width, height: out.height,
    backend: out.backend, workers: out.workers, adapter, tiles: out.tiles, glassTiles: out.glassTiles, tta, msPerTile: out.msPerTile, gpuLostAtTile: out.gpuLostAtTile,
    classAreas: out.classAreas, objects: out.objects,
    timings: { fetchMs: m.fetchMs, initMs: m.initMs, openMs: state.image.openMs, inferMs: out.inferMs, blendMs: out.blendMs, overlayMs },
  });
  setStatus("done");
}

export async function exportResult(kind) {
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
    const ds = r.overlayDownsample;
    if (ds > 1 && kind === "overlay") {
      notice(`The overlay PNG is at 1/${ds} of full resolution (${Math.ceil(r.width / ds)}×${Math.ceil(r.height / ds)} px): a picture of the slide larger than that is more than the page draws. The label mask, the GeoJSON and the measurements are at full resolution.`);
    }
  } catch (e) {
    showError(`The export failed: ${message(e)}`);
  }
}
