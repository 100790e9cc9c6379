// Stamps the built viewer's version into its service worker (Trunk's post-build hook, see
// Trunk.toml; or `node scripts/stamp_version.mjs DIR`). The version is a hash of every file the
// service worker caches, so a build that changes any of them (histoseg.js, its wasm, a script, a
// model) gets a new cache of its own, filled whole at install: the page is never served a new
// histoseg.js with an old wasm.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2] || process.env.TRUNK_STAGING_DIR;
if (!dir) throw new Error("usage: node scripts/stamp_version.mjs DIST_DIR (or run as Trunk's post_build hook)");
const swPath = path.join(dir, "sw.js");
const sw = fs.readFileSync(swPath, "utf8");
const list = sw.match(/const APP = \[([^\]]*)\]/);
if (!list) throw new Error(`${swPath} has no APP list`);
const files = [...list[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]).filter((f) => f !== "./");
const hash = crypto.createHash("sha256");
for (const f of files) {
  hash.update(f);
  hash.update(fs.readFileSync(path.join(dir, f)));
}
const version = hash.digest("hex").slice(0, 16);
const stamped = sw.replace(/^const VERSION = "[^"]*";/m, `const VERSION = "${version}";`);
if (stamped === sw && !sw.includes(`const VERSION = "${version}";`)) throw new Error(`${swPath} has no VERSION line`);
fs.writeFileSync(swPath, stamped);
console.log(`service worker version ${version} (${files.length} files)`);
