// Results kept in this browser's own storage (IndexedDB, on this machine; nothing is sent
// anywhere), so that a finished segmentation survives a reload of the page: the last result for
// each region of a file with a model is found again when the same file (name, size, modification
// time) is opened with the same model: every region segmented is shown again. What is kept is
// the labels of the region (one byte a pixel) and where they lie, or a streamed slide's label
// pyramid and objects, never the image. The newest KEEP results are kept; "Forget kept results"
// clears them all.
const DB = "histoseg";
const STORE = "results";
const KEEP = 8;

const request = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});

function openDb() {
  const req = indexedDB.open(DB, 1);
  // indexed by when each was kept, so the oldest are found without reading their labels
  req.onupgradeneeded = () => req.result.createObjectStore(STORE).createIndex("savedAt", "savedAt");
  return request(req);
}

async function withStore(mode, fn) {
  const db = await openDb();
  try {
    const tx = db.transaction(STORE, mode);
    const completed = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("the browser's storage refused the result"));
    });
    const out = await fn(tx.objectStore(STORE));
    await completed;
    return out;
  } finally {
    db.close();
  }
}

/** The key of a file's results with a model (`fileKey`), or of one region's with `region`. */
export const keyOf = (file, modelId, region) =>
  JSON.stringify([file.name, file.size, file.lastModified, modelId, ...(region ? [region.x, region.y, region.width, region.height] : [])]);

/** Keeps `entry` ({ key, fileKey, name, modelId, x, y, width, height, umPerPx, raw: Uint8Array, ... })
 * in place of an older one for the same key; drops the oldest beyond KEEP. */
export function keep(entry) {
  return withStore("readwrite", async (store) => {
    store.put({ ...entry, savedAt: Date.now() }, entry.key);
    const extra = (await request(store.count())) - KEEP;
    if (extra <= 0) return;
    const oldest = await request(store.index("savedAt").getAllKeys(null, extra));
    for (const k of oldest) store.delete(k);
  });
}

/** The kept results whose `fileKey` is `fileKey`, oldest first. */
export const findAll = (fileKey) => withStore("readonly", async (store) =>
  (await request(store.getAll())).filter((e) => e.fileKey === fileKey).sort((a, b) => a.savedAt - b.savedAt));

/** Every kept result, without its labels (what the page lists, and the privacy test checks). */
export const list = () => withStore("readonly", async (store) => (await request(store.getAll())).map(({ raw, ...rest }) => ({ ...rest, rawBytes: raw.byteLength })));

/** Forgets every kept result. */
export const forget = () => withStore("readwrite", (store) => request(store.clear()));
