// What every part of the page shares: its state (the workers, the open image, the models, the
// result), the status, error and notice lines, the statistics panel, and `report`, which tells
// observers what the page did (the browser tests' hooks are one, added only by the tests).
export const $ = (id) => document.getElementById(id);
export const state = {
  compute: null,      // WorkerClient: models, segmentation, exports
  display: null,      // WorkerClient: the viewer's tiles
  file: null,         // the open File or Blob (sent to a worker again if it must reopen it)
  image: null,        // { name, width, height, format, umPerPx, umSource, levels, openMs, ... }
  models: new Map(),  // id -> { manifest, backend, bytes, fetchMs, initMs, adapter }
  styles: new Map(),  // model id -> { colors: [[r,g,b]], visible: [bool] }
  running: null,      // { cancelled, finished: Promise }
  opening: null,      // a Promise while a new image opens: true if it opened
  result: null,       // the current result: { modelId, manifest, name, id, x, y, width, height, levels, overlayDownsample }
  shown: [],          // earlier results still shown (regions segmented before), the same
  viewer: null,
};
// What the page does, told to observers: the browser tests' hooks (tests/browser/hooks/page.js),
// which are not part of the page. The tests add them to the pages they open, before this runs.
const observers = [];
export const report = (kind, value) => { for (const o of observers) o(kind, value); };
if (typeof window.histosegTestHooks === "function") window.histosegTestHooks({ state, observe: (fn) => observers.push(fn) });

export function setStatus(s) { document.body.dataset.status = s; report("status", s); }

export function showError(msg) {
  const el = $("error");
  el.textContent = msg;
  el.hidden = false;
  report("error", msg);
}
export function clearError() { $("error").hidden = true; }
export function notice(msg) {
  const el = $("notice");
  el.textContent = msg;
  el.hidden = false;
  report("notice", msg);
}
export const message = (e) => (e && e.message) || String(e);

export function setStats(entries) {
  const dl = $("stats");
  dl.replaceChildren();
  for (const [k, v] of entries) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v; dd.dataset.key = k;
    dl.append(dt, dd);
  }
}

export const fmt = (v, digits = 3) => (typeof v === "number" ? v.toFixed(digits) : "–");

export function setBusy(busy) {
  $("segment-view").disabled = busy || !state.image;
  $("segment-all").disabled = busy || !state.image;
  $("cancel").disabled = !busy;
  for (const id of ["export-labels", "export-overlay", "export-geojson", "export-csv", "export-json"]) $(id).disabled = !state.result;
}

export function formatDuration(ms) {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}
