/**
 * Where compiles run, in the panel (real Chromium, a real builder with the
 * stand-in CLI): an install waiting for a build server under
 * `local_builds: never`, the "This machine" card that changes the setting
 * (the waiting install then builds here) and cleans all build files, with
 * screenshots in light, dark and phone width (test-results/screenshots).
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import type { FirmwareJob } from "../../src/api/wire.ts";
import { configDir, startBuilder } from "../helpers/builder.ts";
import { missingTool } from "../helpers/tools.ts";
import { HAS_CHROMIUM, openPanel, setStandIn, SKIP_REASON, useChromium, type Variant } from "./browser-helpers.ts";

async function waitForDevices(page: Page, count: number): Promise<void> {
  await page.locator("esphome-devices-view li.device").nth(count - 1).waitFor();
}

describe.skipIf(missingTool(HAS_CHROMIUM, "Chromium"))(HAS_CHROMIUM ? "placement in the panel" : `placement in the panel (skipped: ${SKIP_REASON})`, () => {
  const chromium = useChromium();

  for (const variant of ["light", "dark", "phone"] as const satisfies readonly Variant[]) {
    it(`shows an install waiting for a build server, builds it here once allowed, and cleans all (${variant})`, async () => {
      setStandIn({ ESPHOME_STANDIN_COMPILE_SECONDS: "0.3", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.2", ESPHOME_STANDIN_EXTRA_LINES: "0", ESPHOME_STANDIN_FAIL: "" });
      const { builder, port } = await startBuilder({ localBuilds: "never" }, await configDir({ kitchen: "", "living-room": "", office: "" }));
      const p = await openPanel(chromium.browser(), port, variant);
      const { page } = p;
      await page.goto(`http://127.0.0.1:${port}/`);
      await waitForDevices(page, 3);

      const job = await builder.queue.enqueue({ configuration: "kitchen.yaml", job_type: "install", port: "OTA" });
      await page.getByRole("tab", { name: "Jobs" }).click();
      const row = page.locator(`esphome-jobs-view li.job[data-job-id="${job.job_id}"]`);
      const badge = row.locator('.badge[data-waiting="build_server"]');
      await badge.waitFor();
      await expect(badge.textContent()).resolves.toContain("Waiting for a build server");
      await p.screenshot("jobs-waiting-for-build-server");

      // The setting, in Build servers → This machine.
      await page.getByRole("tab", { name: "Build servers" }).click();
      const card = page.locator("esphome-build-servers-view section.local-builds");
      await card.waitFor();
      const select = card.locator("select.local-builds-select");
      await expect(select.inputValue()).resolves.toBe("never");
      await card.locator(".never-warning").waitFor();
      await card.scrollIntoViewIfNeeded();
      await p.screenshot("build-servers-local-builds-never");

      // Only while no build server is connected: none is, so the waiting install builds here.
      await select.selectOption("fallback");
      await card.locator(".never-warning").waitFor({ state: "detached" });
      await expect.poll(() => builder.queue.get(job.job_id)?.status, { timeout: 20_000 }).toBe("completed");
      expect(builder.queue.get(job.job_id)).toMatchObject({ source: "local" });
      expect(builder.remote.placement.localBuilds).toBe("fallback");

      // Clean all build files, after a confirmation.
      await card.locator("md-outlined-button.clean-all").click();
      await page.locator("esphome-confirm-dialog md-filled-button").click();
      await expect.poll(() => builder.queue.list().find((j: FirmwareJob) => j.job_type === "clean_all")?.status, { timeout: 10_000 }).toBe("completed");
      await page.getByRole("tab", { name: "Jobs" }).click();
      const clean = page.locator('esphome-jobs-view li.job[data-status="completed"]', { hasText: "Clean all" });
      await clean.waitFor();
      await expect(clean.textContent()).resolves.toContain("All devices");
      await p.screenshot("jobs-clean-all");
      expect(p.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
      await p.context.close();
    }, 60_000);
  }
});
