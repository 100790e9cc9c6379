// Launching Debian's Chromium headless with the flags measured in ../shared/TOOLCHAIN.md.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export async function launch({ webgpu }) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "histoseg-chromium-"));
  const args = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
  ];
  if (webgpu) args.push("--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader");
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args,
  });
  return { context, close: async () => { await context.close(); fs.rmSync(userDataDir, { recursive: true, force: true }); } };
}

export const DATA = process.env.HISTOSEG_DATA || path.resolve(import.meta.dirname, "../../../shared/data");
