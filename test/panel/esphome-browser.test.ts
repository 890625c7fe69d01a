/**
 * The panel's ESPHome tab and banner in real Chromium against real builders:
 * the add-on's bundled ESPHome as the current version with the releases the
 * real package index offers, and a builder that could not install ESPHome
 * (no Python) showing the blocking banner and its queued job failing.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readPin } from "../../src/esphome/pinned.ts";
import { ROOT, configDir, startBuilder } from "../helpers/builder.ts";
import { tempDir } from "../helpers/tmp.ts";
import { missingTool } from "../helpers/tools.ts";
import { HAS_CHROMIUM, SKIP_REASON, openPanel, useChromium } from "./browser-helpers.ts";

const PIN = readPin(ROOT).version ?? "";
const REAL_ESPHOME = path.join(ROOT, ".venv", "esphome", "bin", "esphome");

describe.skipIf(missingTool(HAS_CHROMIUM, SKIP_REASON) || missingTool(existsSync(REAL_ESPHOME), "the real ESPHome in .venv/esphome"))("the ESPHome tab", () => {
  const chromium = useChromium();

  it("shows the bundled ESPHome jobs use and the releases the package index offers", async () => {
    const { port } = await startBuilder({ managedEsphome: true, bundledEsphome: REAL_ESPHOME, esphome: REAL_ESPHOME, dataDir: await tempDir("panel-esphome-") });
    const p = await openPanel(chromium.browser(), port);
    const { page } = p;
    await page.goto(`http://127.0.0.1:${port}/#esphome`);
    await page.getByText(`Jobs use ESPHome ${PIN}`).waitFor({ timeout: 10_000 });
    const row = page.locator(`esphome-esphome-view li.row[data-version="${PIN}"]`).first();
    await expect(row.textContent()).resolves.toContain("in the add-on image");
    await page.locator("esphome-esphome-view md-outlined-button.load").click();
    await page.locator("esphome-esphome-view ul.offered li.row").nth(5).waitFor({ timeout: 60_000 });
    const offered = await page.locator("esphome-esphome-view ul.offered li.row").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-version")));
    expect(offered).toContain(PIN);
    // Newest first, no pre-releases by default.
    expect(offered.every((v) => v !== null && !/(a|b|rc)\d+$/.test(v))).toBe(true);
    await p.screenshot("esphome-tab");
    expect(p.errors).toEqual([]);
    await p.context.close();
  }, 120_000);

  it("a builder that could not install ESPHome says why on every tab, with a way to the details", async () => {
    const dir = await configDir({ kitchen: "" });
    const { port } = await startBuilder({ managedEsphome: true, esphome: "esphome", python: "/nonexistent/python3", dataDir: await tempDir("panel-esphome-") }, dir);
    const p = await openPanel(chromium.browser(), port);
    const { page } = p;
    await page.goto(`http://127.0.0.1:${port}/#devices`);
    const banner = page.locator(".esphome-banner");
    await banner.waitFor({ timeout: 10_000 });
    await expect(banner.textContent()).resolves.toMatch(/Builds cannot run until ESPHome is installed\..*--python \/nonexistent\/python3 is not an executable file/s);
    await p.screenshot("esphome-failed-banner");
    await banner.locator("md-text-button.esphome-details").click();
    await page.locator("esphome-esphome-view .alert.error").waitFor();
    expect(p.errors).toEqual([]);
    await p.context.close();
  }, 60_000);
});
