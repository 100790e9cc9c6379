// The browser tests' window onto the page: `window.histoseg`, kept from what the page reports.
// This file is not part of the page (it is not in dist/, and nothing serves it): the tests add it
// to every page they open as an init script (browser.mjs `launch`), which runs before the page's
// own scripts and leaves `window.histosegTestHooks` for page.js to call.
window.histosegTestHooks = function install({ state, observe }) {
  const h = {
    status: "starting", lastResult: null, errors: [], notices: [], image: null, opened: 0, cancelled: [], drawn: [], overlays: 0,
    updateReady: false, restored: [], restoreChecks: 0, rowsDrawn: 0, details: [],
    // "Train your own" (www/teach.js): opened, strokes painted, each preview, the model saved
    teach: { open: null, strokes: 0, previews: [], viewPreviews: [], saved: null, imported: 0 },
    kept: () => state.compute.call("kept"),
    labels: async () => (state.result ? state.compute.call("labels") : null),
    geojson: async () => (state.result ? state.compute.call("export", { kind: "geojson" }) : null),
    // the wasm linear memory of each worker, in bytes
    wasmMemory: async () => ({ compute: await state.compute.call("memory"), display: await state.display.call("memory") }),
    viewer: () => state.viewer,
  };
  const on = {
    status: (s) => { h.status = s; },
    error: (m) => h.errors.push(m),
    notice: (m) => h.notices.push(m),
    rows: (n) => { h.rowsDrawn = n; },
    overlay: () => { h.overlays += 1; },
    detail: (d) => h.details.push(d),
    opened: (image) => { h.image = image; h.opened += 1; },
    restoreChecked: () => { h.restoreChecks += 1; },
    restored: (r) => h.restored.push(r),
    result: (r) => { h.lastResult = r; },
    cancelled: (text) => h.cancelled.push(text),
    drawn: (name) => h.drawn.push(name),
    updateReady: () => { h.updateReady = true; },
    teach: (e) => {
      if (e.kind === "open") h.teach.open = e;
      else if (e.kind === "stroke") h.teach.strokes = e.strokes;
      else if (e.kind === "preview") {
        // what the tests compare between previews: the box, the labels and each label's count
        const p = e.preview;
        const counts = new Array(e.classes).fill(0);
        for (const l of p.labels) counts[l] += 1;
        h.teach.previews.push({ ...e, preview: { x: p.x, y: p.y, width: p.width, height: p.height, scale: p.scale, counts, labels: Array.from(p.labels) } });
      }
      else if (e.kind === "view-preview") {
        const p = e.preview;
        h.teach.viewPreviews.push({ x: p.x * p.scale, y: p.y * p.scale, width: p.width * p.scale, height: p.height * p.scale });
      }
      else if (e.kind === "saved") h.teach.saved = e;
      else if (e.kind === "imported") h.teach.imported = e.strokes;
    },
  };
  observe((kind, value) => on[kind]?.(value));
  window.histoseg = h;
};
