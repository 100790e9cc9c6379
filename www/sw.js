// Offline support, one version at a time: the app's own files (page, scripts, wasm, styles,
// models) are cached whole when this service worker installs, in a cache named by the build's
// version, and served from there. A new build is a new service worker (its VERSION differs) that
// fills a cache of its own and waits: the page says an update is ready and takes it on a click,
// so a running page never gets a new histoseg.js with an old wasm, nor the reverse.
// The samples are cached as they are opened. Only same-origin GET requests for those files are
// answered here: never an image the user opens (those never leave the page as requests anyway)
// and never anything from another origin.
const VERSION = "dev"; // a hash of the APP files, stamped at build time (scripts/stamp_version.mjs)
const CACHE = `histoseg-${VERSION}`;
const APP = [
  "./", "index.html", "app.js", "page.js", "models.js", "overlay_layer.js", "run.js", "viewer.js", "worker.js", "worker_client.js", "exports.js", "kept.js", "teach.js", "style.css", "histoseg.js", "histoseg_bg.wasm",
  "models/glands.histoseg", "models/nuclei.histoseg",
];
const SAMPLES = /\/samples\/[^/]+$/;

const scope = new URL(self.registration.scope);
const appUrls = new Set(APP.map((p) => new URL(p, scope).href));
const key = (url) => url.origin + url.pathname;

self.addEventListener("install", (event) => {
  // straight from the network (not the HTTP cache), so that the set is this build's
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(APP.map((p) => new Request(p, { cache: "reload" })))));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("histoseg-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// the page's "update" button: the waiting version takes over, and the page reloads
self.addEventListener("message", (event) => {
  if (event.data === "update") self.skipWaiting();
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== scope.origin) return; // the browser handles it as usual
  if (appUrls.has(key(url))) {
    // this version's copy; the network only if the cache lost it (storage cleared)
    event.respondWith(caches.open(CACHE).then((c) => c.match(key(url))).then((hit) => hit || fetch(req)));
  } else if (SAMPLES.test(url.pathname)) {
    event.respondWith((async () => {
      const cache = await caches.open(CACHE);
      try {
        const resp = await fetch(req);
        if (resp.ok && resp.type === "basic") await cache.put(key(url), resp.clone());
        return resp;
      } catch (e) {
        const hit = await cache.match(key(url));
        if (hit) return hit;
        throw e;
      }
    })());
  }
});
