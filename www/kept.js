// Results kept in this browser's own storage (IndexedDB, on this machine; nothing is sent
// anywhere), so that a finished segmentation survives a reload of the page: the last result for
// each region of a file with a model is found again when the same file (name, size, modification
// time) is opened with the same model: every region segmented is shown again. What is kept is
// the labels of the region (one byte a pixel) and where they lie, or a streamed slide's label
// pyramid and objects, never the image. The newest KEEP results are kept; "Forget kept results"
// clears them all, and the taught models kept below.
const DB = "histoseg";
const STORE = "results";
const KEEP = 8;

const request = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});

// Models taught in the page ("Train your own"), kept the same way in a database of their own:
// the model file's bytes (a frozen UNet, a head, the class names), never the image or strokes.
const MODEL_DB = "histoseg-models";
const MODEL_STORE = "models";

function openDb(db = DB, store = STORE) {
  const req = indexedDB.open(db, 1);
  // indexed by when each was kept, so the oldest are found without reading their labels
  req.onupgradeneeded = () => req.result.createObjectStore(store).createIndex("savedAt", "savedAt");
  return request(req);
}

async function withStore(mode, fn, dbName = DB, storeName = STORE) {
  const db = await openDb(dbName, storeName);
  try {
    const tx = db.transaction(storeName, mode);
    const completed = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error("the browser's storage refused the result"));
    });
    const out = await fn(tx.objectStore(storeName));
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

// Whether the models' database exists: reading or clearing it must not create it (a visit that
// taught nothing leaves no database behind).
const modelDbExists = async () => (await indexedDB.databases()).some((d) => d.name === MODEL_DB);

/** Forgets every kept result and every kept model. */
export const forget = async () => {
  await withStore("readwrite", (store) => request(store.clear()));
  if (await modelDbExists()) await withStore("readwrite", (store) => request(store.clear()), MODEL_DB, MODEL_STORE);
};

/** Keeps a taught model `{ id, name, bytes: Uint8Array }` in place of one with the same id. */
export const keepModel = (m) => withStore("readwrite", (store) => request(store.put({ ...m, savedAt: Date.now() }, m.id)), MODEL_DB, MODEL_STORE);

/** The kept models, oldest first. */
export const keptModels = async () => {
  if (!(await modelDbExists())) return [];
  return withStore("readonly", async (store) => (await request(store.getAll())).sort((a, b) => a.savedAt - b.savedAt), MODEL_DB, MODEL_STORE);
};
