// Benchmark, not a test: opens N headless Chromium viewers of a running WebRTC viewer page
// (pipelines/webrtc.sh) at once, lets them play, and prints each one's figures.
//   node tests/browser/viewers_bench.mjs URL N SECONDS
// Environment: CHROMIUM (default /usr/bin/chromium).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, n, seconds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
if (!url || !n || !seconds) {
  console.error("usage: viewers_bench.mjs URL N SECONDS");
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), "gst-dawn-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const pages = [];
  for (let i = 0; i < n; i++) {
    const p = await context.newPage();
    await p.goto(url);
    pages.push(p);
  }
  await new Promise(r => setTimeout(r, seconds * 1000));
  for (const [i, p] of pages.entries()) {
    const s = await p.evaluate(() => window.dawnStats);
    console.log(`viewer ${i + 1}: ${JSON.stringify(s)}`);
  }
  for (const p of pages) await p.close({ runBeforeUnload: true });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
