// A minimal static file server for the built viewer (dist/), on 127.0.0.1: the browser tests' and
// `cargo xtask serve`'s (scripts/serve.mjs). It serves the files as built, injecting nothing.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
  ".wasm": "application/wasm", ".css": "text/css", ".json": "application/json",
  ".png": "image/png", ".jpg": "image/jpeg", ".svg": "image/svg+xml", ".md": "text/markdown",
};

// `mounts` maps URL prefixes ("/ort/") to further folders (the benchmark serves onnxruntime-web).
// `log`, when given, receives every request the server sees: { method, path, bodyBytes }.
// `port` 0 takes a free one.
export async function serveDir(root, mounts = {}, log = null, port = 0) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    if (log) {
      const entry = { method: req.method, path: req.url, bodyBytes: 0 };
      log.push(entry);
      req.on("data", (chunk) => { entry.bodyBytes += chunk.length; });
    }
    let base = root;
    let rel = decodeURIComponent(url.pathname);
    for (const [prefix, dir] of Object.entries(mounts)) {
      if (rel.startsWith(prefix)) { base = dir; rel = rel.slice(prefix.length - 1); break; }
    }
    let file = path.join(base, rel);
    if (!file.startsWith(base)) { res.writeHead(403).end(); return; }
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404).end("not found"); return; }
      res.writeHead(200, { "content-type": TYPES[path.extname(file)] || "application/octet-stream" });
      res.end(data);
    });
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}
