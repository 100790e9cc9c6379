// Reads 8-bit greyscale PNGs (the label masks histoseg writes) with Node's zlib, so the tests can
// compare masks without an image library.
import zlib from "node:zlib";

export function readGrayPng(buf) {
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (!sig.every((b, i) => buf[i] === b)) throw new Error("not a PNG");
  let pos = 8, width = 0, height = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString("latin1", pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      const [depth, color, , , interlace] = data.subarray(8, 13);
      if (depth !== 8 || color !== 0 || interlace !== 0) throw new Error(`expected 8-bit grey non-interlaced, got depth ${depth} colour ${color}`);
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const out = new Uint8Array(width * height);
  let prev = new Uint8Array(width);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (width + 1)];
    const line = raw.subarray(y * (width + 1) + 1, (y + 1) * (width + 1));
    const cur = new Uint8Array(width);
    for (let x = 0; x < width; x++) {
      const a = x > 0 ? cur[x - 1] : 0, b = prev[x], c = x > 0 ? prev[x - 1] : 0;
      let p = 0;
      if (f === 1) p = a; else if (f === 2) p = b; else if (f === 3) p = (a + b) >> 1;
      else if (f === 4) { const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c); p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      cur[x] = (line[x] + p) & 255;
    }
    out.set(cur, y * width);
    prev = cur;
  }
  return { width, height, data: out };
}

/// Number of 8-connected regions of each class value > 0.
export function components8(labels, width, height) {
  const seen = new Uint8Array(labels.length);
  const counts = {};
  const stack = [];
  for (let i = 0; i < labels.length; i++) {
    const c = labels[i];
    if (c === 0 || seen[i]) continue;
    counts[c] = (counts[c] || 0) + 1;
    seen[i] = 1; stack.push(i);
    while (stack.length) {
      const j = stack.pop();
      const x = j % width, y = (j - x) / width;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const xx = x + dx, yy = y + dy;
        if (xx < 0 || yy < 0 || xx >= width || yy >= height) continue;
        const k = yy * width + xx;
        if (!seen[k] && labels[k] === c) { seen[k] = 1; stack.push(k); }
      }
    }
  }
  return counts;
}
