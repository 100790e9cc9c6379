// The segmentation overlay on the viewer: a result drawn whole at its coarsest level, the part in
// view drawn again finer when zoomed in on a large result, and a streamed slide's rows drawn as
// they are labelled. The pixels are coloured in the compute worker; this draws them.
import { $, state, report } from "./page.js";

// Rows of a streamed whole-slide run, drawn as the network labels them onto a preview of the
// slide's overview (every `step`-th row and column), which the finished result's overview (after
// post-processing) then replaces.
export function drawRows({ step, y, height, width, rgba }) {
  const run = state.running;
  if (!run || !state.image) return;
  if (!run.partial) {
    const c = document.createElement("canvas");
    c.width = Math.ceil(state.image.width / step); c.height = Math.ceil(state.image.height / step);
    run.partial = c;
    // each overview pixel stands for a step x step block of level 0
    state.viewer.setOverlay({ canvas: c, x: 0, y: 0, width: c.width * step, height: c.height * step });
  }
  run.partial.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba.buffer), width, height), 0, y);
  state.viewer.redraw();
  report("rows", Math.min(state.image.height, (y + height) * step));
}

// A run that ends without a result takes its rows off the view; the last result is shown again.
export function dropPartial(run) {
  if (!run.partial || state.viewer.overlay?.canvas !== run.partial) return;
  if (state.result) renderOverlay();
  else state.viewer.setOverlay(null);
}

// Results are drawn with the current class colours and visibility; only the newest request is
// drawn when several are in flight (a colour picker sends many). A result's overlay is drawn whole
// at its coarsest level (a region's only level; a streamed slide's overview), and, when the view
// is zoomed in past that, the part in view again at the level that matches the zoom
// (renderDetail).
let overlaySeq = 0;
const overlayStyle = (r) => {
  const style = state.styles.get(r.modelId);
  return { colors: style.colors.flat(), visible: style.visible.map((v) => (v ? 1 : 0)), contour: $("mode").value === "contour" };
};
const rgbaCanvas = (rgba, width, height) => {
  const c = document.createElement("canvas");
  c.width = width; c.height = height;
  c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba.buffer), width, height), 0, 0);
  return c;
};
// A result's overlay whole, at its coarsest level: { canvas, x, y, width, height } in level 0.
async function wholeOverlay(r) {
  const rgba = await state.compute.call("overlay", { id: r.id, ...overlayStyle(r) });
  const top = r.levels.at(-1);
  return { canvas: rgbaCanvas(rgba, top.width, top.height), x: r.x, y: r.y, width: top.width * top.downsample, height: top.height * top.downsample };
}

// Draws the current result and the earlier ones still shown (under it).
export async function renderOverlay() {
  const r = state.result;
  if (!r) return;
  const seq = ++overlaySeq;
  const shown = state.shown;
  const [overlay, ...others] = await Promise.all([r, ...shown].map(wholeOverlay));
  if (seq !== overlaySeq || state.result !== r) return;
  state.viewer.setOtherOverlays(others);
  state.viewer.setOverlay(overlay);
  report("overlay");
  renderDetail();
}

// The part of a large result in view, at the finest level no finer than the screen's pixels.
let detailSeq = 0;
async function renderDetail() {
  const r = state.result;
  const view = state.viewer.visibleRegion();
  if (!r || r.levels.length < 2 || !view) return;
  const seq = ++detailSeq;
  const perDevicePx = 1 / (state.viewer.view.scale * (window.devicePixelRatio || 1));
  let level = 0;
  r.levels.forEach((l, i) => { if (l.downsample <= Math.max(1, perDevicePx) * 1.01) level = i; });
  if (level === r.levels.length - 1) { state.viewer.setOverlayDetail(null); return; }
  const { width: lw, height: lh, downsample: ds } = r.levels[level];
  // the view, with a margin so that a short pan needs nothing new, in the level's pixels
  const pad = Math.round(Math.max(view.width, view.height) / ds / 4);
  const x0 = Math.max(0, Math.floor((view.x - r.x) / ds) - pad), y0 = Math.max(0, Math.floor((view.y - r.y) / ds) - pad);
  const x1 = Math.min(lw, Math.ceil((view.x + view.width - r.x) / ds) + pad), y1 = Math.min(lh, Math.ceil((view.y + view.height - r.y) / ds) + pad);
  if (x1 <= x0 || y1 <= y0) { state.viewer.setOverlayDetail(null); return; }
  const rgba = await state.compute.call("overlayRegion", { id: r.id, level, x: x0, y: y0, width: x1 - x0, height: y1 - y0, ...overlayStyle(r) });
  if (seq !== detailSeq || state.result !== r) return;
  state.viewer.setOverlayDetail({ canvas: rgbaCanvas(rgba, x1 - x0, y1 - y0), x: r.x + x0 * ds, y: r.y + y0 * ds, width: (x1 - x0) * ds, height: (y1 - y0) * ds });
  report("detail", { level, downsample: ds, x: r.x + x0 * ds, y: r.y + y0 * ds, width: (x1 - x0) * ds, height: (y1 - y0) * ds });
}
let detailTimer = null;
export const scheduleDetail = () => { clearTimeout(detailTimer); detailTimer = setTimeout(renderDetail, 120); };
