// A model file of the user's own, with three classes, opened from disk in the page: the legend
// shows its classes with the file's names and colours, a segmentation uses all three, and the
// measurements name every class. A file that is not a
// model is refused with the reason and the model in use stays selected. The model file is made by
// the histoseg CLI (`init`, seeded), the same file the CLI itself segments with.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { serveDir } from "./server.mjs";
import { launch, readyPage, segmentationEnd, viewAt } from "./browser.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DIST = path.join(ROOT, "dist");
const CLI = path.join(ROOT, "target/release/histoseg");
const CLASSES = [["background", "000000"], ["nucleus", "ff3d7f"], ["boundary", "ffd600"]];
let site;
let modelBytes;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, "index.html")), "build the viewer first (cargo xtask test does)");
  assert.ok(fs.existsSync(CLI), "build the CLI first (cargo test --features cli does)");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-own-model-"));
  const file = path.join(dir, "three-class.histoseg");
  execFileSync(CLI, ["init", "--out", file, "--name", "three-class", "--classes", CLASSES.map((c) => c.join(":")).join(","),
    "--base-channels", "8", "--channel-mults", "1,2", "--tile", "64", "--overlap", "16", "--um-per-px", "0.5", "--seed", "3"]);
  modelBytes = fs.readFileSync(file);
  fs.rmSync(dir, { recursive: true, force: true });
  site = await serveDir(DIST);
});
after(async () => { site?.server.close(); });

test("an own 3-class model file opens with its classes and segments with all of them", { timeout: 600_000 }, async () => {
  const b = await launch({ webgpu: false });
  try {
    const { page, problems } = await readyPage(b.context, site.url, "?backend=cpu");
    // not a model: refused, the glands model stays in use
    await page.setInputFiles("#model-file", { name: "notes.histoseg", mimeType: "application/octet-stream", buffer: Buffer.from("not a model") });
    await page.waitForFunction(() => window.histoseg.errors.length > 0, null, { timeout: 60_000 });
    const refused = await page.evaluate(() => ({ error: window.histoseg.errors.at(-1), model: document.getElementById("model").value }));
    assert.match(refused.error, /^The model could not be loaded: not a histoseg model file/);
    assert.equal(refused.model, "glands");

    await page.setInputFiles("#model-file", { name: "three-class.histoseg", mimeType: "application/octet-stream", buffer: modelBytes });
    await page.waitForFunction(() => document.getElementById("model").value === "file:three-class.histoseg", null, { timeout: 120_000 });
    const legend = await page.evaluate(() => [...document.querySelectorAll("#legend li")].map((li) => ({
      name: li.querySelector("label").textContent, colour: li.querySelector("input[type=color]").value,
    })));
    assert.deepEqual(legend, CLASSES.slice(1).map(([name, hex]) => ({ name, colour: `#${hex}` })));
    const info = await page.evaluate(() => document.getElementById("model-info").textContent);
    assert.match(info, /Classes: background, nucleus, boundary\./);
    assert.match(info, /UNTRAINED/);

    await page.setInputFiles("#file", { name: "he-1000x1000.png", mimeType: "image/png", buffer: fs.readFileSync(path.join(ROOT, "www/samples/he-1000x1000.png")) });
    await page.waitForFunction(() => window.histoseg.status === "opened", null, { timeout: 120_000 });
    assert.equal(await page.evaluate(() => document.getElementById("model").value), "file:three-class.histoseg", "opening an image keeps the chosen model");
    await viewAt(page, 500, 500, 2.5);
    await page.click("#segment-view");
    const end = await segmentationEnd(page);
    assert.equal(end.status, "done", end.errors.join("; "));
    const areas = end.result.classAreas;
    assert.equal(areas.length, 3, "one area per class");
    assert.ok(areas.every((a) => a > 0), `every class is predicted somewhere: ${areas}`);

    // the measurements download names both foreground classes
    const csv = await page.evaluate(async () => {
      const chunks = [];
      const orig = URL.createObjectURL;
      URL.createObjectURL = (blob) => { chunks.push(blob); return orig(blob); };
      document.getElementById("export-csv").click();
      // the compute worker writes the CSV
      for (let i = 0; i < 600 && !chunks.length; i++) await new Promise((r) => setTimeout(r, 100));
      URL.createObjectURL = orig;
      return chunks.length ? await chunks[0].text() : "";
    });
    for (const [name] of CLASSES.slice(1)) assert.match(csv, new RegExp(`\\b${name}\\b`), `the CSV names ${name}`);
    const overlay = await page.evaluate(async () => {
      const r = window.histoseg.lastResult;
      return { labels: Array.from(await window.histoseg.labels()), width: r.width, height: r.height };
    });
    const counts = [0, 0, 0];
    for (const l of overlay.labels) counts[l] += 1;
    assert.deepEqual(counts, areas, "the labels the page holds match its class areas");
    assert.deepEqual(problems, []);
    console.log(`own 3-class model: class areas ${areas.join(", ")} px over ${overlay.width}x${overlay.height}`);
  } finally {
    await b.close();
  }
});
