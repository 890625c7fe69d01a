/**
 * Device state in the panel, in real Chromium against a real builder whose devices
 * are native-API responders on the loopback: online dots, versions, update badges
 * (both reasons), a sleeping device whose install waits for it, the filters, the
 * address and logs dialogs; screenshots in light, dark and phone width
 * (test-results/screenshots/devices-state-*.png).
 */
import { utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { Builder } from "../../src/builder.ts";
import { testConfig } from "../helpers/config.ts";
import { tempDir } from "../helpers/tmp.ts";
import { missingTool } from "../helpers/tools.ts";
import { NativeApiDevice } from "../fixtures/native-api-device.ts";
import { hostDeviceYaml } from "../real-device/devices.ts";
import { HAS_CHROMIUM, openPanel, setStandIn, SKIP_REASON, useChromium, type Variant } from "./browser-helpers.ts";

const COMPILED = "2026-12-01 10:00:00 +0000";
const BEFORE = new Date("2026-12-01T09:00:00Z");
const AFTER = new Date("2026-12-01T11:00:00Z");
const TIMINGS = { intervalMs: 500, retryMs: 100, maxBackoffMs: 500, timeoutMs: 500, startSpacingMs: 10 };

async function fleet(): Promise<{ dir: string; port: number }> {
  const dir = await tempDir("panel-devices-");
  const devices: NativeApiDevice[] = [];
  const add = async (name: string, version: string, mtime: Date, extra = "", answering = true): Promise<void> => {
    let apiPort = 1;
    if (answering) {
      const d = new NativeApiDevice({ info: { name, esphomeVersion: version, compilationTime: COMPILED } });
      await d.start();
      devices.push(d);
      apiPort = d.port;
    }
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(file, hostDeviceYaml({ name, friendly_name: name.replace(/-/g, " "), api_port: apiPort }) + extra);
    await utimes(file, mtime, mtime);
  };
  await add("living-room", "2026.11.0", BEFORE);
  await add("garage-door", "2026.9.2", BEFORE);
  await add("kitchen", "2026.11.0", AFTER);
  await add("porch-sensor", "2026.11.0", BEFORE, "deep_sleep:\n  run_duration: 10s\n  sleep_duration: 10min\n", false);
  await add("office", "2026.10.0", AFTER);
  const builder = new Builder(testConfig(dir), { devices: { timings: TIMINGS } });
  const { port } = await builder.start();
  onTestFinished(async () => {
    await builder.stop();
    for (const d of devices) await d.stop();
  });
  return { dir, port };
}

describe.skipIf(missingTool(HAS_CHROMIUM, "Chromium"))(HAS_CHROMIUM ? "device state in the panel" : `device state in the panel (skipped: ${SKIP_REASON})`, () => {
  const chromium = useChromium();

  it("shows online/offline, versions, update badges, a waiting install and the filters, in light, dark and phone width", { timeout: 180_000 }, async () => {
    for (const variant of ["light", "dark", "phone"] as const satisfies readonly Variant[]) {
      setStandIn({ ESPHOME_STANDIN_COMPILE_SECONDS: "0.2", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.2", ESPHOME_STANDIN_EXTRA_LINES: "0", ESPHOME_STANDIN_FAIL: "" });
      const { port } = await fleet();
      const p = await openPanel(chromium.browser(), port, variant);
      const { page } = p;
      const t0 = Date.now();
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.locator("esphome-devices-view li.device").nth(4).waitFor();
      const firstPaint = Date.now() - t0;
      const view = page.locator("esphome-devices-view");
      // Every device reached: four online, the sleeping one offline.
      await page.waitForFunction(() => {
        const v = document.querySelector("esphome-builder-app")?.shadowRoot?.querySelector("esphome-devices-view");
        return v?.shadowRoot?.querySelectorAll('.dot[data-status="online"]').length === 4 && v.shadowRoot.querySelectorAll('.dot[data-status="offline"]').length === 1;
      }, undefined, { timeout: 20_000 });
      await page.waitForFunction(() => {
        const v = document.querySelector("esphome-builder-app")?.shadowRoot?.querySelector("esphome-devices-view");
        return v?.shadowRoot?.querySelectorAll(".badge.update").length === 3;
      }, undefined, { timeout: 20_000 });
      const row = (name: string) => view.locator(`li.device[data-configuration="${name}.yaml"]`);
      await expect.poll(() => row("garage-door").locator(".badge.update").getAttribute("data-reasons")).toBe("esphome_version");
      await expect.poll(() => row("kitchen").locator(".badge.update").getAttribute("data-reasons")).toBe("configuration_changed");
      await expect.poll(() => row("office").locator(".badge.update").getAttribute("data-reasons")).toBe("esphome_version configuration_changed");
      expect(await row("living-room").locator(".badge.update").count()).toBe(0);
      expect(await row("living-room").locator(".version").textContent()).toBe("2026.11.0");
      expect(await row("living-room").locator("button.address").textContent()).toContain("127.0.0.1");
      expect(await row("porch-sensor").locator(".badge.sleep").count()).toBe(1);

      // The sleeping device's install compiles, then waits for it.
      await page.getByRole("button", { name: "Install porch sensor", exact: true }).click();
      await page.locator('esphome-install-dialog md-list-item[data-method="ota"]').click();
      await page.locator("esphome-install-dialog md-text-button.close").click();
      await row("porch-sensor").locator('.badge[data-status="waiting"]').waitFor({ timeout: 20_000 });
      await p.screenshot("devices-state");

      // Filters: update available lists the three, offline the sleeping one.
      await view.locator('.filter-chip[data-filter="outdated"]').click();
      await expect.poll(() => view.locator("li.device").count()).toBe(3);
      expect(await view.locator('.filter-chip[data-filter="outdated"] .n').textContent()).toBe("3");
      if (variant === "light") await p.screenshot("devices-state-filter-outdated");
      await view.locator('.filter-chip[data-filter="offline"]').click();
      await expect.poll(() => view.locator("li.device").count()).toBe(1);
      await view.locator('.filter-chip[data-filter="all"]').click();

      if (variant !== "dark") {
        // The address dialog; a bad address is refused with the builder's message.
        await row("office").locator("button.address").click();
        const dialog = page.locator("esphome-device-address-dialog");
        await dialog.locator("md-outlined-text-field").locator("input").fill("not a host!");
        await dialog.locator("md-filled-button.save").click();
        await expect.poll(() => dialog.locator("md-outlined-text-field").getAttribute("error-text")).toMatch(/address must be an IP address or a host name/);
        await p.screenshot("devices-state-address");
        await dialog.locator("md-text-button.cancel").click();

        // The logs dialog streams `esphome logs` (the stand-in) and closes.
        await row("living-room").locator("md-icon-button.logs").click();
        const logs = page.locator("esphome-device-logs-dialog");
        await logs.locator("esphome-log-viewer .line").first().waitFor({ timeout: 20_000 });
        await p.screenshot("devices-state-logs");
        await logs.locator("md-text-button").click();
        await expect.poll(() => logs.locator("md-dialog[open]").count()).toBe(0);
      }
      expect(p.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
      console.log(`${variant}: the device list painted ${firstPaint} ms after navigation`);
      await p.context.close();
    }
  });
});
