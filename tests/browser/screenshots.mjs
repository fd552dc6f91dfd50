// The editor's pictures for the docs: the demo pipeline after a run, with pictures on its nodes.
//   subspace serve --port 8792 &   # graphs from examples/presets
//   node tests/browser/screenshots.mjs http://127.0.0.1:8792/ docs/images
// The demo's first run takes about three minutes on a 2-core CPU.
import { chromium } from "playwright-core";
import path from "node:path";

const [url, out] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
  page.on("dialog", (d) => d.accept());
  await page.goto(url);
  await page.locator(".palette-item").first().waitFor();
  await page.selectOption("#graph-list", "demo.json");
  await page.getByRole("button", { name: "Open", exact: true }).click();
  await page.locator('.react-flow__node[data-id="edit"]').waitFor();
  await page.getByRole("button", { name: "Run", exact: true }).click();
  await page.locator(".message", { hasText: /^(Done|Finished)/ }).waitFor({ timeout: 900_000 });
  console.log(await page.locator(".message").textContent());
  await page.getByRole("button", { name: "Tidy" }).click();
  await page.waitForTimeout(600);
  await page.locator('.react-flow__node[data-id="render"] header').click();
  // Zoom in around the edit: the fit on the left, the edited pictures on the right.
  const boxes = await Promise.all(["gmm", "edit", "render"].map((id) =>
    page.locator(`.react-flow__node[data-id="${id}"]`).boundingBox()));
  const x = boxes.reduce((a, b) => a + b.x + b.width / 2, 0) / boxes.length;
  const y = boxes.reduce((a, b) => a + b.y + b.height / 2, 0) / boxes.length;
  await page.mouse.move(x, y);
  for (let i = 0; i < Number(process.env.ZOOM ?? 4); i++) {
    await page.mouse.wheel(0, -100);
    await page.waitForTimeout(150);
  }
  await page.waitForTimeout(400);
  await page.screenshot({ path: path.join(out, "editor-demo.png") });
  console.log(`wrote ${path.join(out, "editor-demo.png")}`);
} finally {
  await browser.close();
}
