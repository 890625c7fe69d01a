/**
 * The builder-problems banner in real Chromium against a real builder that
 * started on a jobs.json that is a folder: the problem is shown at the top of
 * every view, a new one appears live, and dismissing one clears it on the
 * builder (screenshots in test-results/screenshots).
 */
import { mkdir } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { resolvePaths } from "../../src/paths.ts";
import { configDir, startBuilder } from "../helpers/builder.ts";
import { waitFor } from "../helpers/tmp.ts";
import { HAS_CHROMIUM, openPanel, SKIP_REASON, useChromium, type Variant } from "./browser-helpers.ts";
import { missingTool } from "../helpers/tools.ts";

describe.skipIf(missingTool(HAS_CHROMIUM, "Chromium"))(HAS_CHROMIUM ? "builder problems in the panel" : `builder problems in the panel (skipped: ${SKIP_REASON})`, () => {
  const chromium = useChromium();

  async function brokenBuilder() {
    const dir = await configDir();
    await mkdir(resolvePaths({ configDir: dir }).jobsFile, { recursive: true });
    return startBuilder({}, dir);
  }

  it("shows a problem found at start, adds one live, and dismisses one for the builder", async () => {
    const { builder, port } = await brokenBuilder();
    const jobsFile = builder.paths.jobsFile;
    const p = await openPanel(chromium.browser(), port);
    const { page } = p;
    await page.goto(`http://127.0.0.1:${port}/`);
    const banner = page.locator("esphome-problems .problem");
    await banner.first().waitFor();
    expect(await banner.count()).toBe(1);
    const first = banner.first();
    expect(await first.getAttribute("data-code")).toBe("state_file_unreadable");
    await expect(first.locator(".title").textContent()).resolves.toBe("A saved file could not be read and was set aside");
    await expect(first.locator(".message").textContent()).resolves.toContain(`moved to ${jobsFile}.corrupt and the builder started without it`);
    await expect(page.locator("esphome-problems section").getAttribute("aria-label")).resolves.toBe("Problems on the builder");
    // Above the view, on every tab.
    await page.locator("#tab-jobs").click();
    await banner.first().waitFor();

    builder.problems.report({
      code: "disk_full",
      subject: `${builder.paths.stateDir}/job-logs`,
      message: `Job logs could not be written: No space left on ${builder.paths.stateDir}/job-logs (ENOSPC writing 0123456789ab.log): free some space and try again. Running jobs keep their output in memory; a log written while this lasts may miss lines.`,
    });
    await page.locator('esphome-problems .problem[data-code="disk_full"]').waitFor();
    expect(await page.locator('esphome-problems .problem[data-code="disk_full"]').getAttribute("class")).toContain("error");
    await page.locator("#tab-devices").click();
    await page.locator("esphome-devices-view li.device").first().waitFor();
    await p.screenshot("problems");

    await page.getByRole("button", { name: "Dismiss: A saved file could not be read and was set aside" }).click();
    await page.locator('esphome-problems .problem[data-code="state_file_unreadable"]').waitFor({ state: "detached" });
    expect(builder.problems.list().map((x) => x.code)).toEqual(["disk_full"]);

    // Cleared on the builder (space came back): the banner goes away by itself.
    builder.problems.clear("disk_full", `${builder.paths.stateDir}/job-logs`);
    await page.locator("esphome-problems .problem").first().waitFor({ state: "detached" });
    expect(p.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
    await p.context.close();
  });

  for (const variant of ["dark", "phone"] as const satisfies readonly Variant[]) {
    it(`reads well in ${variant}`, async () => {
      const { builder, port } = await brokenBuilder();
      builder.problems.report({ code: "disk_full", subject: builder.paths.jobsFile, message: `The job index could not be saved: No space left on ${builder.paths.stateDir} (ENOSPC writing jobs.json): free some space and try again. The builder keeps working from memory and saves it once it can.` });
      const p = await openPanel(chromium.browser(), port, variant);
      await p.page.goto(`http://127.0.0.1:${port}/`);
      await p.page.locator("esphome-devices-view li.device").first().waitFor();
      await waitFor(async () => (await p.page.locator("esphome-problems .problem").count()) === 2, 5000, "both problems");
      await p.screenshot("problems");
      expect(p.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
      await p.context.close();
    });
  }
});
