// Pan-and-zoom view of a slide on one canvas, in the spirit of OpenSeadragon: the image is drawn
// from 256 px tiles of the pyramid level that matches the zoom, over the coarsest level as a
// backdrop while finer tiles load. Tiles are asked for asynchronously (the slide lives in a worker,
// where Rust decodes only what is asked for); the canvas never waits for them.
// A segmentation overlay (a canvas covering a level-0 region) is drawn on top, and over it, when
// zoomed in on a large result, a finer overlay of the part in view (`setOverlayDetail`). In the
// "Train your own" mode a painter (`setPainter`) turns one pointer into a brush.
//
// Coordinates: `cx`, `cy` are the level-0 pixel at the canvas centre; `scale` is CSS pixels per
// level-0 pixel.

const TILE = 256;
const MAX_TILES = 320; // about 80 MB of decoded tiles
const IN_FLIGHT = 6; // tile requests outstanding at once

export class SlideViewer {
  constructor(container, canvas, { onChange = () => {} } = {}) {
    this.container = container;
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.onChange = onChange;
    this.slide = null;   // { levels, region(level, x, y, width, height) -> Promise<RGBA bytes> }
    this.generation = 0; // bumped per slide: tiles of an earlier slide are dropped when they arrive
    this.inFlight = new Set();
    this.levels = [];
    this.tiles = new Map(); // "level:tx:ty" -> canvas, in least-recently-used order
    this.queue = [];
    this.backdrop = null;
    this.overlay = null; // { canvas, x, y, width, height }
    this.detail = null;  // the same, finer, over part of the overlay
    this.others = [];    // overlays of earlier results still shown, under the overlay
    this.overlayVisible = true;
    this.overlayOpacity = 0.45;
    this.view = { cx: 0, cy: 0, scale: 1 };
    this.pointers = new Map();
    // "Train your own" (teach.js): while set, one pointer paints instead of panning; it gets
    // level-0 points, and draws its strokes over everything
    this.painter = null; // { down(p), move(p), up(p), draw(ctx, scale) }
    this.painting = null; // the pointer id that paints
    this.pending = false;
    this.bindEvents();
    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
  }

  setSlide(slide) {
    this.slide = slide;
    this.generation += 1;
    this.levels = slide.levels;
    this.tiles.clear();
    this.inFlight.clear();
    this.queue = [];
    this.overlay = null;
    this.detail = null;
    this.others = [];
    this.backdrop = null;
    // the coarsest level, whole, as the backdrop (levels are at most ~2k px across at the top)
    const top = this.levels.length - 1;
    const l = this.levels[top];
    if (l.width * l.height <= 4096 * 4096) {
      const generation = this.generation;
      slide.region(top, 0, 0, l.width, l.height).then((rgba) => {
        if (generation !== this.generation) return;
        this.backdrop = { level: top, canvas: this.tileCanvas(rgba, l.width, l.height) };
        this.redraw();
      }, (e) => console.warn(`the overview could not be read: ${e.message || e}`));
    }
    this.fit();
  }

  clear() {
    this.slide = null;
    this.generation += 1;   // { levels, region(level, x, y, width, height) -> Promise<RGBA bytes> }
    this.generation = 0; // bumped per slide: tiles of an earlier slide are dropped when they arrive
    this.inFlight = new Set();
    this.levels = [];
    this.tiles.clear();
    this.backdrop = null;
    this.overlay = null;
    this.detail = null;
    this.others = [];
    this.redraw();
  }

  // a new overlay drops the finer one drawn over the old
  setOverlay(overlay) { this.overlay = overlay; this.detail = null; this.redraw(); }
  setOverlayDetail(detail) { this.detail = detail; this.redraw(); }
  setOtherOverlays(others) { this.others = others; this.redraw(); }
  setOverlayStyle({ visible, opacity }) {
    if (visible !== undefined) this.overlayVisible = visible;
    if (opacity !== undefined) this.overlayOpacity = opacity;
    this.redraw();
  }

  // A canvas of RGBA pixels. For tiles at the left or top edge the border pixel was not read
  // (there is none), so the pixels are shifted by one to keep the same layout.
  tileCanvas(rgba, w, h, shiftX = false, shiftY = false) {
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.byteLength), w, h), shiftX ? 1 : 0, shiftY ? 1 : 0);
    return c;
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, this.container.clientWidth), h = Math.max(1, this.container.clientHeight);
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
    this.redraw();
  }

  fit() {
    if (!this.slide) return;
    const w = this.container.clientWidth || 1, h = this.container.clientHeight || 1;
    const l0 = this.levels[0];
    this.view = { cx: l0.width / 2, cy: l0.height / 2, scale: Math.min(w / l0.width, h / l0.height) * 0.98 };
    this.changed();
  }

  zoomBy(factor, atX, atY) {
    if (!this.slide) return;
    const w = this.container.clientWidth, h = this.container.clientHeight;
    if (atX === undefined) { atX = w / 2; atY = h / 2; }
    const l0 = this.levels[0];
    const min = Math.min(w / l0.width, h / l0.height) * 0.25;
    const scale = Math.min(Math.max(this.view.scale * factor, min), 16);
    // keep the image point under (atX, atY) fixed
    const p = this.imagePoint(atX, atY);
    this.view = { scale, cx: p.x - (atX - w / 2) / scale, cy: p.y - (atY - h / 2) / scale };
    this.changed();
  }

  panBy(dx, dy) {
    if (!this.slide) return;
    this.view.cx -= dx / this.view.scale;
    this.view.cy -= dy / this.view.scale;
    this.changed();
  }

  /// The part of the image on screen, in level-0 pixels (clamped to the image).
  visibleRegion() {
    if (!this.slide) return null;
    const w = this.container.clientWidth, h = this.container.clientHeight;
    const l0 = this.levels[0];
    const x0 = Math.max(0, Math.floor(this.view.cx - w / 2 / this.view.scale));
    const y0 = Math.max(0, Math.floor(this.view.cy - h / 2 / this.view.scale));
    const x1 = Math.min(l0.width, Math.ceil(this.view.cx + w / 2 / this.view.scale));
    const y1 = Math.min(l0.height, Math.ceil(this.view.cy + h / 2 / this.view.scale));
    if (x1 <= x0 || y1 <= y0) return null;
    return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  }

  changed() { this.redraw(); this.onChange(this.view); }

  setPainter(painter) { this.painter = painter; this.painting = null; this.container.classList.toggle("painting", Boolean(painter)); this.redraw(); }

  /// The level-0 point at (x, y) CSS pixels from the viewer's top-left corner.
  imagePoint(x, y) {
    const w = this.container.clientWidth, h = this.container.clientHeight;
    return { x: this.view.cx + (x - w / 2) / this.view.scale, y: this.view.cy + (y - h / 2) / this.view.scale };
  }

  /// The level-0 point under a pointer event.
  toImage(ev) {
    const rect = this.container.getBoundingClientRect();
    return this.imagePoint(ev.clientX - rect.left, ev.clientY - rect.top);
  }

  redraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  levelForScale() {
    const dpr = window.devicePixelRatio || 1;
    const want = 1 / (this.view.scale * dpr); // level-0 pixels per device pixel
    let best = 0;
    this.levels.forEach((l, i) => { if (l.downsample <= want * 1.01) best = i; });
    return best;
  }

  draw() {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#e9e7ee";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.slide) return;
    const s = this.view.scale * dpr;
    // level-0 coordinates -> device pixels
    ctx.setTransform(s, 0, 0, s, this.canvas.width / 2 - this.view.cx * s, this.canvas.height / 2 - this.view.cy * s);
    const l0 = this.levels[0];
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, l0.width, l0.height);
    ctx.imageSmoothingEnabled = true;
    if (this.backdrop) ctx.drawImage(this.backdrop.canvas, 0, 0, l0.width, l0.height);

    const level = this.levelForScale();
    this.tooManyTiles = false;
    if (!this.backdrop || level !== this.backdrop.level) {
      const ds = this.levels[level].downsample;
      const lv = this.levels[level];
      const r = this.visibleRegion();
      if (r) {
        const tx0 = Math.floor(r.x / ds / TILE), ty0 = Math.floor(r.y / ds / TILE);
        const tx1 = Math.floor(Math.min(lv.width - 1, (r.x + r.width) / ds) / TILE);
        const ty1 = Math.floor(Math.min(lv.height - 1, (r.y + r.height) / ds) / TILE);
        const wanted = [];
        for (let ty = ty0; ty <= ty1; ty++) {
          for (let tx = tx0; tx <= tx1; tx++) {
            const key = `${level}:${tx}:${ty}`;
            const tile = this.tiles.get(key);
            if (tile) {
              this.tiles.delete(key); this.tiles.set(key, tile); // most recently used
              // tiles carry a one-pixel border so smoothing at their edges samples real
              // neighbours, not transparency (which shows as hairline seams)
              const w = tile.width - 2, h = tile.height - 2;
              ctx.drawImage(tile, 1, 1, w, h, tx * TILE * ds, ty * TILE * ds, w * ds, h * ds);
            } else {
              wanted.push({ key, level, tx, ty });
            }
          }
        }
        // a slide without a coarse enough level (an unpyramided TIFF) would need thousands of
        // full-resolution tiles to fill the view: ask the user to zoom in instead
        this.tooManyTiles = wanted.length > MAX_TILES;
        this.queue = this.tooManyTiles ? [] : wanted;
        if (this.queue.length) this.loadSome();
      }
    }
    if (this.tooManyTiles) {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#333";
      ctx.font = `${14 * dpr}px sans-serif`;
      ctx.textAlign = "center";
      ctx.fillText("This file has no overview level for this zoom: zoom in to see the image.", this.canvas.width / 2, this.canvas.height / 2);
      ctx.setTransform(s, 0, 0, s, this.canvas.width / 2 - this.view.cx * s, this.canvas.height / 2 - this.view.cy * s);
    }
    if (this.overlay && this.overlayVisible) {
      const o = this.overlay;
      // crisp class edges when magnified; averaged when minified so thin contours stay visible
      ctx.imageSmoothingEnabled = s < 1;
      ctx.globalAlpha = this.overlayOpacity;
      for (const e of this.others) ctx.drawImage(e.canvas, e.x, e.y, e.width, e.height);
      const d = this.detail;
      if (d) {
        // the coarse overlay everywhere but under the finer one (no double opacity)
        ctx.save();
        ctx.beginPath();
        ctx.rect(o.x, o.y, o.width, o.height);
        ctx.rect(d.x, d.y, d.width, d.height);
        ctx.clip("evenodd");
      }
      ctx.drawImage(o.canvas, o.x, o.y, o.width, o.height);
      if (d) {
        ctx.restore();
        ctx.globalAlpha = this.overlayOpacity;
        ctx.drawImage(d.canvas, d.x, d.y, d.width, d.height);
      }
      ctx.globalAlpha = 1;
    }
    if (this.painter) this.painter.draw(ctx, s);
  }

  /// Asks the slide for queued tiles, a few at a time; each redraws when it arrives.
  loadSome() {
    const generation = this.generation;
    while (this.queue.length && this.inFlight.size < IN_FLIGHT && this.slide) {
      const { key, level, tx, ty } = this.queue.shift();
      if (this.tiles.has(key) || this.inFlight.has(key)) continue;
      this.inFlight.add(key);
      const lv = this.levels[level];
      const w = Math.min(TILE, lv.width - tx * TILE), h = Math.min(TILE, lv.height - ty * TILE);
      this.slide.region(level, Math.max(0, tx * TILE - 1), Math.max(0, ty * TILE - 1), w + 2, h + 2)
        .then((rgba) => this.tileCanvas(rgba, w + 2, h + 2, tx === 0, ty === 0), (e) => {
          console.warn(`tile ${key} could not be read: ${e.message || e}`);
          return this.tileCanvas(new Uint8Array((w + 2) * (h + 2) * 4), w + 2, h + 2);
        })
        .then((canvas) => {
          if (generation !== this.generation) return;
          this.inFlight.delete(key);
          this.tiles.set(key, canvas);
          while (this.tiles.size > MAX_TILES) this.tiles.delete(this.tiles.keys().next().value);
          this.redraw();
        });
    }
  }

  bindEvents() {
    const el = this.container;
    el.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const rect = el.getBoundingClientRect();
      // trackpad pinch arrives as a wheel event with ctrlKey and small deltas
      const k = ev.ctrlKey ? 0.01 : 0.0015;
      const delta = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
      this.zoomBy(Math.exp(-delta * k), ev.clientX - rect.left, ev.clientY - rect.top);
    }, { passive: false });
    el.addEventListener("pointerdown", (ev) => {
      el.setPointerCapture(ev.pointerId);
      el.focus();
      // the painter takes one pointer's left button; a second pointer (pinch) or another button pans
      if (this.painter && this.slide && ev.button === 0 && this.pointers.size === 0 && this.painting === null) {
        this.painting = ev.pointerId;
        this.painter.down(this.toImage(ev));
        return;
      }
      this.pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
    });
    el.addEventListener("pointermove", (ev) => {
      if (ev.pointerId === this.painting) { this.painter.move(this.toImage(ev)); this.redraw(); return; }
      const prev = this.pointers.get(ev.pointerId);
      if (!prev) return;
      if (this.pointers.size === 2) {
        const [a, b] = [...this.pointers.values()];
        const before = Math.hypot(a.x - b.x, a.y - b.y);
        this.pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
        const [c, d] = [...this.pointers.values()];
        const after = Math.hypot(c.x - d.x, c.y - d.y);
        const rect = el.getBoundingClientRect();
        if (before > 0) this.zoomBy(after / before, (c.x + d.x) / 2 - rect.left, (c.y + d.y) / 2 - rect.top);
        return;
      }
      this.pointers.set(ev.pointerId, { x: ev.clientX, y: ev.clientY });
      this.panBy(ev.clientX - prev.x, ev.clientY - prev.y);
    });
    el.addEventListener("contextmenu", (ev) => { if (this.painter) ev.preventDefault(); });
    const up = (ev) => {
      if (ev.pointerId === this.painting) {
        this.painting = null;
        this.painter?.up(this.toImage(ev));
        this.redraw();
        return;
      }
      this.pointers.delete(ev.pointerId);
    };
    el.addEventListener("pointerup", up);
    el.addEventListener("pointercancel", up);
    el.addEventListener("keydown", (ev) => {
      const step = 80;
      const actions = {
        ArrowLeft: () => this.panBy(step, 0), ArrowRight: () => this.panBy(-step, 0),
        ArrowUp: () => this.panBy(0, step), ArrowDown: () => this.panBy(0, -step),
        "+": () => this.zoomBy(1.25), "=": () => this.zoomBy(1.25), "-": () => this.zoomBy(0.8), "0": () => this.fit(),
      };
      const a = actions[ev.key];
      if (a) { ev.preventDefault(); a(); }
    });
  }
}
