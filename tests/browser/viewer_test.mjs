// Opens the WebRTC viewer page (examples/webrtc) in Debian's Chromium, headless, and checks
// what a user would see: within 60 s, >= 50 video frames decoded at the expected size, audio
// packets arriving, and a second viewer joining while the first keeps playing.
//   node tests/browser/viewer_test.mjs URL WIDTH HEIGHT
// Environment: CHROMIUM (default /usr/bin/chromium). Prints one JSON line per viewer figure
// and "PASS" or "FAIL: <what>" last; exits 1 on failure. A stage that hangs fails naming it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, width, height] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
if (!url || !width || !height) {
  console.log("FAIL: usage: viewer_test.mjs URL WIDTH HEIGHT");
  process.exit(2);
}
const BUDGET_MS = 60_000;
const MIN_FRAMES = 50;
const started = Date.now();
let stage = "launching chromium";

const watchdog = setTimeout(() => {
  console.log(`FAIL: watchdog: '${stage}' did not finish within ${BUDGET_MS / 1000 + 30} s`);
  process.exit(1);
}, BUDGET_MS + 30_000);

const profile = mkdtempSync(join(tmpdir(), "gst-dawn-chromium-"));
let context;

function fail(msg) {
  throw new Error(msg);
}

async function stats(page) {
  return page.evaluate(() => window.dawnStats);
}

// Polls a viewer's stats until `ok` holds; fails with `what` and the last figures at the deadline.
async function waitFor(page, what, ok) {
  stage = what;
  let s;
  while (Date.now() - started < BUDGET_MS) {
    s = await stats(page);
    if (s && s.state === "error") fail(`${what}: the page reports ${s.error}`);
    if (s && ok(s)) return s;
    await new Promise(r => setTimeout(r, 250));
  }
  fail(`${what}: not within ${BUDGET_MS / 1000} s of the start (last figures ${JSON.stringify(s)})`);
}

async function open(name) {
  stage = `${name}: loading ${url}`;
  const page = await context.newPage();
  page.on("console", m => console.log(`[${name} console] ${m.text()}`));
  page.on("pageerror", e => console.log(`[${name} error] ${e}`));
  await page.goto(url, { timeout: 15_000 });
  return page;
}

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: 30_000,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      // Sound without a click, as after a user's click on the page's button.
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const first = await open("viewer 1");
  const a = await waitFor(first, `viewer 1: ${MIN_FRAMES} frames decoded and audio packets`,
    s => s.framesDecoded >= MIN_FRAMES && s.audioPackets > 0);
  console.log(JSON.stringify({ viewer: 1, at_s: (Date.now() - started) / 1000, ...a }));
  if (a.width !== width || a.height !== height) {
    fail(`viewer 1 decodes ${a.width}×${a.height}, expected ${width}×${height}`);
  }
  const text = await first.textContent("#stats");
  if (!text.includes(`frames decoded: `) || !text.includes(`resolution: ${width}×${height}`)) {
    fail(`the #stats element does not show the figures: ${JSON.stringify(text)}`);
  }

  const second = await open("viewer 2");
  const b = await waitFor(second, "viewer 2: joining the running stream (25 frames, audio)",
    s => s.framesDecoded >= 25 && s.audioPackets > 0);
  const a2 = await waitFor(first, "viewer 1: still playing after viewer 2 joined",
    s => s.framesDecoded >= a.framesDecoded + 25);
  console.log(JSON.stringify({ viewer: 2, at_s: (Date.now() - started) / 1000, ...b }));
  console.log(JSON.stringify({ viewer: 1, at_s: (Date.now() - started) / 1000, ...a2 }));
  if (b.width !== width || b.height !== height) {
    fail(`viewer 2 decodes ${b.width}×${b.height}, expected ${width}×${height}`);
  }
  stage = "both viewers leaving (WHEP DELETE)";
  await second.close({ runBeforeUnload: true });
  await first.close({ runBeforeUnload: true });
  let viewers;
  for (let i = 0; i < 40; i++) {
    viewers = (await (await fetch(new URL("/status", url))).json()).viewers;
    if (viewers === 0) break;
    await new Promise(r => setTimeout(r, 250));
  }
  if (viewers !== 0) fail(`the server still counts ${viewers} viewer(s) 10 s after both pages closed`);
  console.log("PASS");
} catch (e) {
  console.log(`FAIL: ${e.message}`);
  process.exitCode = 1;
} finally {
  stage = "closing chromium";
  await context?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
