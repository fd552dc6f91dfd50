// End-to-end test of the graph editor in a real browser (Debian's Chromium through playwright-core).
// Run by tests/editor.rs against a server it started on a graphs folder holding fit.json (a small fit and an
// edit of four pictures):
//   node tests/browser/editor.mjs URL [--shots DIR] [--moves N]
// Builds the rest of the graph by dragging from the palette and between sockets, sees a wrong link refused
// while dragging, runs, sees pictures on a node, moves the edit's slider and sees the picture change with the
// fit cached (timing each move), undoes a deletion, reloads during a run and sees it reattach, stops it; then
// opens pictures.json (pictures loaded from a folder beside it, inverted, edited) and sees the loaded pictures on
// Load images and the slider re-run only the edit and render on the inverted codes.
// Prints one line `LATENCY {json}` and exits non-zero at the first failed check.
import { chromium } from "playwright-core";
import path from "node:path";

const args = process.argv.slice(2);
const url = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const shots = opt("--shots", "");
const moves = Number(opt("--moves", "20"));
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

// Root in a container needs --no-sandbox; the network flags keep Chromium off a network it cannot reach.
// playwright gives every launch a fresh, empty user-data-dir of its own.
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
  ],
});

const node = (page, id) => page.locator(`.react-flow__node[data-id="${id}"]`);
const handle = (page, id, kind, port) =>
  page.locator(`.react-flow__node[data-id="${id}"] .react-flow__handle.${kind}[data-handleid="${port}"]`);
const centre = async (loc) => {
  const b = await loc.boundingBox();
  if (!b) throw new Error("not on screen");
  return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
};

/** Drags a link from an output socket to an input socket; `during` runs while the pointer is over the target. */
async function link(page, from, to, during) {
  const a = await centre(handle(page, from[0], "source", from[1]));
  const b = await centre(handle(page, to[0], "target", to[1]));
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 8 });
  await page.mouse.move(b.x, b.y, { steps: 8 });
  if (during) await during();
  await page.mouse.up();
}

async function dragFromPalette(page, type, x, y) {
  const canvas = await page.locator(".react-flow__pane").boundingBox();
  await page.locator(`.palette-item[data-type="${type}"]`).dragTo(page.locator(".react-flow__pane"), {
    targetPosition: { x: x - canvas.x, y: y - canvas.y },
  });
}

const edgeCount = (page) => page.locator(".react-flow__edge").count();
const badge = (page, id) => node(page, id).locator(".badge").first();

let failed = false;
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  page = await context.newPage();
  page.on("dialog", (d) => d.accept());
  page.on("pageerror", (e) => console.log(`page error: ${e.message}`));
  await page.goto(url);
  await page.locator(".palette-item").first().waitFor();
  check(await page.locator('meta[name="subspace-token"]').count() === 1, "the page carries the session token");

  // Open the prepared fit, then build the rest by dragging.
  await page.selectOption("#graph-list", "fit.json");
  await page.getByRole("button", { name: "Open", exact: true }).click();
  await node(page, "edit").waitFor();
  const pane = await page.locator(".react-flow__pane").boundingBox();
  await dragFromPalette(page, "subspace.generator", pane.x + pane.width - 520, pane.y + 120);
  await node(page, "generator").waitFor();
  await dragFromPalette(page, "subspace.image_preview", pane.x + pane.width - 260, pane.y + 120);
  await node(page, "image_preview").waitFor();
  check(true, "two nodes dragged from the palette");

  const before = await edgeCount(page);
  let hint = "";
  await link(page, ["generator", "images"], ["edit", "mixture"], async () => {
    hint = (await page.locator(".connection-hint").textContent({ timeout: 2000 }).catch(() => "")) ?? "";
  });
  check(hint.includes("takes mixture"), `an images -> mixture link is refused while dragging, with the reason ("${hint}")`);
  check(await edgeCount(page) === before, "the refused link was not made");
  await link(page, ["edit", "codes"], ["generator", "codes"]);
  await link(page, ["generator", "images"], ["image_preview", "images"]);
  check(await edgeCount(page) === before + 2, "two links dragged between sockets");

  // Ask for the preview's output and run.
  await node(page, "image_preview").locator("header").click();
  await page.getByLabel(/requested output/).check();
  await page.keyboard.press("Control+Enter");
  const strip = node(page, "image_preview").locator(".strip img");
  await strip.first().waitFor({ timeout: 90_000 });
  check(await strip.count() === 4, "four pictures on the preview node after the run");
  check(await node(page, "generator").locator(".strip img").count() > 0, "the generator's images show on it too");
  check((await badge(page, "gmm").textContent()).startsWith("ran"), "the fit ran in the first run");
  if (shots) await page.screenshot({ path: path.join(shots, "editor-run.png") });

  // Click a picture: it opens large.
  await strip.first().click();
  check(await page.locator(".lightbox img").isVisible(), "a picture opens large");
  await page.keyboard.press("Escape");

  // Live edit: each slider move re-runs the edit and render only; the picture changes.
  const slider = node(page, "edit").locator('input[type="range"][data-param="ratio"]');
  const firstSrc = await strip.first().getAttribute("src");
  const count = async () => Number((await page.evaluate(() => document.body.dataset.previews)) ?? 0);
  const waitPreview = async (n) => page.waitForFunction((k) => Number(document.body.dataset.previews ?? 0) >= k, n, { timeout: 30_000 });
  await slider.focus();
  let n = await count();
  await page.keyboard.press("PageUp");
  await waitPreview(++n);
  check((await strip.first().getAttribute("src")) !== firstSrc, "moving the slider changes the picture on the node");
  const last = await page.evaluate(() => window.subspaceProbe.previews.at(-1).nodes);
  // The cached fit cuts the walk: what lies above it is not even visited.
  const reran = ["sample", "label", "gauss", "gmm"].filter((k) => last[k] && last[k].state !== "cached");
  check(last.gmm?.state === "cached" && reran.length === 0, `the fit did not re-run for the preview (${JSON.stringify(last)})`);
  check(last.edit?.state === "done" && last.generator?.state === "done", "the edit and its render re-ran");
  check((await badge(page, "gmm").textContent()) === "cached", "the fit node says cached");

  // Dragging the slider: pictures arrive while the pointer is still down.
  const box = await slider.boundingBox();
  const startCount = await count();
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height / 2);
  await page.mouse.down();
  for (let i = 0; i <= 20; i++) {
    await page.mouse.move(box.x + box.width * (0.2 + 0.02 * i), box.y + box.height / 2);
    await page.waitForTimeout(40);
  }
  const duringDrag = (await count()) - startCount;
  await page.mouse.up();
  check(duringDrag >= 2, `pictures updated ${duringDrag} times during one drag`);

  // Timed moves: one key press, wait for its picture, again.
  await page.waitForTimeout(500);
  await slider.focus();
  n = await count();
  const from = (await page.evaluate(() => window.subspaceProbe.previews.length));
  for (let i = 0; i < moves; i++) {
    await page.keyboard.press(i % 2 ? "ArrowLeft" : "ArrowRight");
    await waitPreview(++n);
  }
  const timed = await page.evaluate((k) => window.subspaceProbe.previews.slice(k), from);
  const ms = timed.map((p) => p.ms);
  const answer = timed.map((p) => p.answerMs).sort((a, b) => a - b);
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  const sd = Math.sqrt(ms.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, ms.length - 1));
  const sorted = [...ms].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  const stats = { moves: ms.length, mean, ci95: 1.96 * sd / Math.sqrt(ms.length), median: q(0.5), p90: q(0.9),
    min: sorted[0], max: sorted.at(-1), answerMedian: answer[Math.floor(answer.length / 2)] };
  console.log(`LATENCY ${JSON.stringify(stats)}`);
  check(ms.length === moves, `${moves} timed slider moves each produced a picture`);

  // Undo a deletion.
  await node(page, "image_preview").locator("header").click();
  await page.keyboard.press("Delete");
  await node(page, "image_preview").waitFor({ state: "detached" });
  await page.keyboard.press("Control+z");
  await node(page, "image_preview").waitFor();
  // Links are drawn once their nodes have been measured: wait for it.
  const back = await page.waitForFunction((k) => document.querySelectorAll(".react-flow__edge").length === k, before + 2,
    { timeout: 5000 }).then(() => true, () => false);
  check(back, "Ctrl+Z brings the deleted node back with its link");

  // A long run, a reload in the middle, the run found again, then stopped.
  await node(page, "sample").locator("header").click();
  for (const [param, value] of [["count", "150000"], ["batch", "64"]]) {
    const box = page.locator(`.inspector [data-param-text="${param}"]`);
    await box.fill(value);
    await box.press("Enter");
  }
  await page.getByRole("button", { name: "Run", exact: true }).click();
  await node(page, "sample").locator(".badge.state-started").waitFor({ timeout: 20_000 });
  await page.reload();
  await node(page, "sample").locator(".badge.state-started").waitFor({ timeout: 20_000 });
  check(await page.getByRole("button", { name: "Stop" }).isEnabled(), "after a reload the page follows its run again");

  const other = await context.newPage();
  await other.goto(url);
  await other.locator(".palette-item").first().waitFor();
  await other.waitForTimeout(1000);
  check(await other.locator(".react-flow__node .badge.state-started").count() === 0, "another tab does not show this tab's run");
  await other.close();

  await page.getByRole("button", { name: "Stop" }).click();
  await page.locator(".message", { hasText: "Stopped" }).waitFor({ timeout: 30_000 });
  check((await badge(page, "sample").textContent()) === "stopped", "the stopped node says stopped");
  check(await page.locator(".react-flow__node .badge.state-failed").count() === 0, "Stop is not reported as a failure");
  if (shots) await page.screenshot({ path: path.join(shots, "editor-stopped.png") });

  // Your own pictures: Load images shows the pictures it read (a folder named relative to the graph file), and
  // the slider re-runs only the edit and its render on the codes Invert found.
  await page.selectOption("#graph-list", "pictures.json");
  await page.getByRole("button", { name: "Open", exact: true }).click();
  await node(page, "invert").waitFor();
  await page.keyboard.press("Control+Enter");
  const loaded = node(page, "load").locator(".strip img");
  const rendered = node(page, "render").locator(".strip img");
  await rendered.first().waitFor({ timeout: 120_000 });
  // Pictures arrive one request each: wait for the fourth before counting (on a loaded machine they trail the run).
  await loaded.nth(3).waitFor({ timeout: 30_000 }).catch(() => undefined);
  await node(page, "invert").locator(".strip img").nth(3).waitFor({ timeout: 30_000 }).catch(() => undefined);
  check(await loaded.count() === 4, "the four loaded pictures show on the Load images node");
  check(await node(page, "invert").locator(".strip img").count() === 4, "Invert's renders show on it too");
  const editSlider = node(page, "edit").locator('input[type="range"][data-param="ratio"]');
  const renderedSrc = await rendered.first().getAttribute("src");
  await editSlider.focus();
  const k = await count();
  await page.keyboard.press("PageUp");
  await waitPreview(k + 1);
  check((await rendered.first().getAttribute("src")) !== renderedSrc, "the slider changes the edited inverted picture");
  const live = await page.evaluate(() => window.subspaceProbe.previews.at(-1).nodes);
  const above = ["load", "invert", "sample", "label", "gauss", "gmm"].filter((id) => live[id] && live[id].state !== "cached");
  check(above.length === 0 && live.invert?.state === "cached", `the inversion did not re-run (${JSON.stringify(live)})`);
  check(live.edit?.state === "done" && live.render?.state === "done", "the edit and its render re-ran on inverted codes");
  if (shots) await page.screenshot({ path: path.join(shots, "editor-pictures.png") });
} catch (e) {
  failed = true;
  console.error(e.stack ?? String(e));
  if (page) console.error(`status line: ${await page.locator(".message").textContent().catch(() => "?")}`);
  if (shots && page) await page.screenshot({ path: path.join(shots, "failure.png") }).catch(() => undefined);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
