// Offline support: caches the app's own files (page, scripts, wasm, styles, models, samples) so the
// viewer works with the network off after a first visit. Network first, so a deployed update is
// picked up when online; the cache answers when the network fails. Only same-origin GET requests
// for the files listed here are cached: never an image the user opens (those never leave the
// page as requests anyway) and never anything from another origin.
const CACHE = "histoseg-v1";
const APP = [
  "./", "index.html", "app.js", "viewer.js", "worker.js", "worker_client.js", "exports.js", "style.css", "histoseg.js", "histoseg_bg.wasm",
  "models/glands.histoseg", "models/nuclei.histoseg",
];
const SAMPLES = /\/samples\/[^/]+$/;

const scope = new URL(self.registration.scope);
const appUrls = new Set(APP.map((p) => new URL(p, scope).href));
const cacheable = (url) => url.origin === scope.origin && (appUrls.has(url.origin + url.pathname) || SAMPLES.test(url.pathname));

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(APP)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || !cacheable(url)) return; // the browser handles it as usual
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const resp = await fetch(req);
      if (resp.ok && resp.type === "basic") await cache.put(url.origin + url.pathname, resp.clone());
      return resp;
    } catch (e) {
      const hit = await cache.match(url.origin + url.pathname);
      if (hit) return hit;
      throw e;
    }
  })());
});
