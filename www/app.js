// The page's entry: it starts the workers, opens files and samples, and binds the controls. The
// page itself never decodes or infers: the wasm module runs in two workers (worker.js), one for
// the viewer's display tiles and one that segments and exports, reached through worker_client.js,
// so the page keeps drawing and answering input throughout. The parts: page.js (shared state,
// status and messages), models.js (models and legend), run.js (a segmentation run, kept results,
// downloads), overlay_layer.js (the mask on the view), viewer.js (pan and zoom), exports.js.
// Nothing is sent anywhere: the only requests are for this page's own files.
import { SlideViewer } from "./viewer.js";
import { WorkerClient } from "./worker_client.js";
import { $, state, report, setStatus, showError, clearError, notice, message, setBusy, fmt } from "./page.js";
import { MODELS, addUserModel, loadModel, describeModel, buildLegend } from "./models.js";
import { bindTeach, teachViewChanged, teachImageOpened, restoreTaughtModels } from "./teach.js";
import { renderOverlay, drawRows, scheduleDetail } from "./overlay_layer.js";
import { segment, showProgress, restoreKept, exportResult } from "./run.js";

const SAMPLES = {
  // no colon slide with a licence that lets us ship it was found in a package registry
  glands: {
    file: "samples/cmu-small-region.svs", model: "glands",
    domain: "This sample is skin, not colon: the glands model learnt colon glands (GlaS), so what it marks here lies outside what it was trained for. It shows the viewer at work, not a result to trust.",
  },
  // the PNG records no resolution; its nuclei put it at about 40x
  nuclei: { file: "samples/he-1000x1000.png", model: "nuclei", umPerPx: 0.25 },
};

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
  state.shown = [];
  state.file = file;
  teachImageOpened();
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
  report("opened", state.image);
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
      const m = await addUserModel(id, new Uint8Array(await f.arrayBuffer()), f.name);
      select.value = id;
      describeModel(id, m);
    } catch (e) {
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
  bindTeach();
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
    report("updateReady");
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
    onChange: (v) => { $("zoom-level").textContent = `${(v.scale * 100).toFixed(v.scale < 0.1 ? 1 : 0)} %`; scheduleDetail(); teachViewChanged(); },
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
    await restoreTaughtModels();
    setStatus("ready");
  } catch (e) {
    showError(`The model could not be loaded: ${message(e)}`);
    setStatus("error");
  }
}

main();
