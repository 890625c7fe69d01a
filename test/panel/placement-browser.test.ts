/**
 * Where compiles run, in the panel (real Chromium, a real builder with the
 * stand-in CLI): an install waiting for a build server under
 * `local_builds: never`, the "This machine" card that changes the setting
 * (the waiting install then builds here) and cleans all build files, with
 * screenshots in light, dark and phone width (test-results/screenshots).
 */
import { mkdir, readdir } from "node:fs/promises";
import path from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import type { FirmwareJob } from "../../src/api/wire.ts";
import { configDir, startBuilder } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";
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

  for (const variant of ["light", "dark", "phone"] as const satisfies readonly Variant[]) {
    it(`resets this builder's build files on a paired build server from its row (${variant})`, async () => {
      setStandIn({ ESPHOME_STANDIN_COMPILE_SECONDS: "0.2", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.1", ESPHOME_STANDIN_EXTRA_LINES: "0", ESPHOME_STANDIN_FAIL: "" });
      const a = await startBuilder({ label: "Pi" });
      const b = await startBuilder({ label: "Desktop" });
      const peerPort = b.builder.remote.receiver.port!;
      b.builder.remote.receiver.setPairingWindow("test", true);
      const preview = await a.builder.remote.offloader.previewPair("127.0.0.1", peerPort);
      await a.builder.remote.offloader.requestPair("127.0.0.1", peerPort, preview.pin_sha256);
      b.builder.remote.receiver.approve(a.builder.remote.identityView().dashboard_id);
      await waitFor(() => a.builder.remote.offloader.session(preview.pin_sha256)?.queueStatus?.idle === true, 10_000, "A connected to an idle B");
      // A folder of A's on B to be reset, and another peer's that stays.
      const ours = path.join(b.builder.paths.remoteBuildsDir, a.builder.remote.identityView().pin_sha256, "kitchen");
      const theirs = path.join(b.builder.paths.remoteBuildsDir, "c".repeat(64), "kitchen");
      await mkdir(ours, { recursive: true });
      await mkdir(theirs, { recursive: true });

      const p = await openPanel(chromium.browser(), a.port, variant);
      const { page } = p;
      await page.goto(`http://127.0.0.1:${a.port}/#build-servers`);
      const row = page.locator(`esphome-build-servers-view li.pairing[data-pin="${preview.pin_sha256}"]`);
      const reset = row.locator("md-icon-button.reset-build-env");
      await reset.waitFor();
      await expect(reset.getAttribute("title")).resolves.toBe("Reset build files of this builder on Desktop");
      await row.scrollIntoViewIfNeeded();
      await p.screenshot("build-servers-reset-button");
      await reset.click();
      await page.locator("esphome-confirm-dialog md-filled-button").waitFor();
      await p.screenshot("build-servers-reset-confirm");
      await page.locator("esphome-confirm-dialog md-filled-button").click();

      await expect.poll(() => a.builder.queue.list().find((j) => j.job_type === "clean_all")?.status, { timeout: 10_000 }).toBe("completed");
      expect(await readdir(b.builder.paths.remoteBuildsDir)).toEqual(["c".repeat(64)]);
      await page.getByRole("tab", { name: "Jobs" }).click();
      const job = page.locator('esphome-jobs-view li.job[data-status="completed"]', { hasText: "Build files on Desktop" });
      await job.waitFor();
      await expect(job.locator(".source-remote").count()).resolves.toBe(0);
      await p.screenshot("jobs-reset-build-env");
      expect(p.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
      await p.context.close();
    }, 60_000);
  }
});
