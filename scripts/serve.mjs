// `cargo xtask serve` ends here: serves the built viewer (dist/) on http://127.0.0.1:8080 as the
// files are, with no auto-reload script (Trunk's dev server injects one, which the page's CSP
// refuses). Stop it with Ctrl-C.
import path from "node:path";
import { serveDir } from "../tests/browser/server.mjs";

const port = Number(process.env.PORT || 8080);
const { url } = await serveDir(path.resolve(import.meta.dirname, "../dist"), {}, null, port);
console.log(`histoseg viewer: ${url}`);
