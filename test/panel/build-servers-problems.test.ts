/**
 * Build servers in real Chromium against a real builder process that found
 * unreadable remote-build files at start-up: each problem is shown in the
 * alerts area with what happened and what to do, and Dismiss hides it for
 * good (until the builder restarts).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { resolvePaths } from "../../src/paths.ts";
import { configDir, spawnBuilder, STAND_IN } from "../helpers/builder.ts";
import { HAS_CHROMIUM, openPanel, SKIP_REASON, useChromium } from "./browser-helpers.ts";
import { missingTool } from "../helpers/tools.ts";

describe.skipIf(missingTool(HAS_CHROMIUM, "Chromium"))(HAS_CHROMIUM ? "build servers: problems with the builder's files" : `build servers: problems (skipped: ${SKIP_REASON})`, () => {
  const chromium = useChromium();

  it("shows each problem in the alerts area and dismisses it", { timeout: 90_000 }, async () => {
    const dir = await configDir();
    const paths = resolvePaths({ configDir: dir });
    await mkdir(paths.stateDir, { recursive: true });
    await writeFile(paths.receiverFile, "{ not json");
    const good = { pin_sha256: "ab".repeat(32), label: "Desk", receiver_hostname: "desk.local", receiver_port: 6055, paired_at: "2026-01-01T00:00:00.000Z" };
    await writeFile(paths.offloaderFile, JSON.stringify({ remote_builds_enabled: true, pairings: [good, { ...good, pin_sha256: "nope", label: "Shed" }] }));
    const proc = await spawnBuilder(["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "error"]);

    const p = await openPanel(chromium.browser(), proc.port);
    await p.page.goto(`http://127.0.0.1:${proc.port}/#build-servers`);
    const view = p.page.locator("esphome-build-servers-view");
    const problems = view.locator(".alerts .builder-problem");
    await problems.nth(1).waitFor();
    expect(await problems.count()).toBe(2);
    const receiver = view.locator('.builder-problem[data-kind="receiver_file"]');
    expect(await receiver.locator(".alert-title").textContent()).toBe("The build server's settings could not be read");
    expect(await receiver.locator(".alert-message").textContent()).toMatch(/receiver\.json could not be read .* moved to .*receiver\.json\.corrupt\. The build server was left off/);
    const shed = view.locator('.builder-problem[data-kind="offloader_pairing"]');
    expect(await shed.locator(".alert-title").textContent()).toBe("A paired build server could not be read");
    expect(await shed.locator(".alert-message").textContent()).toMatch(/Paired build server #2 \("Shed"\).*pin_sha256/);
    // The build server is off, as the builder left it, and the readable pairing is still listed.
    expect(await view.locator(".identity").textContent()).toContain("Build server off");
    expect(await view.locator(".card").filter({ hasText: "Desk" }).count()).toBeGreaterThan(0);
    await p.screenshot("build-servers-problems");

    await receiver.locator("md-outlined-button.dismiss").click();
    await receiver.waitFor({ state: "detached" });
    expect(await problems.count()).toBe(1);
    // Dismissed on the builder, not just in this page.
    await p.page.reload();
    await view.locator('.builder-problem[data-kind="offloader_pairing"]').waitFor();
    expect(await view.locator('.builder-problem[data-kind="receiver_file"]').count()).toBe(0);
    expect(p.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
    await p.context.close();
  });
});
