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

/** Largest value of a /proc status field (`VmRSS` now, `VmHWM` peak), in MB, among Chromium's
 * processes of one kind (`renderer`, `gpu-process`). Linux only; one browser runs at a time. */
export function chromiumMemoryMb(type, field) {
  let best = 0;
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (!cmd.includes("chromium") || !cmd.includes(`--type=${type}`)) continue;
      const m = new RegExp(`${field}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) best = Math.max(best, Number(m[1]) / 1024);
    } catch { /* the process exited */ }
  }
  return best;
}
