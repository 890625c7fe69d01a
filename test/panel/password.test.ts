/**
 * A standalone builder with a password, in real Chromium: the browser answers
 * the Basic challenge once and the panel, its API socket and its data all
 * work; without the password the page says what is needed and nothing loads.
 */
import { describe, expect, it } from "vitest";
import { configDir, startBuilder } from "../helpers/builder.ts";
import { HAS_CHROMIUM, openPanel, SKIP_REASON, useChromium } from "./browser-helpers.ts";
import { missingTool } from "../helpers/tools.ts";

describe.skipIf(missingTool(HAS_CHROMIUM, "Chromium"))(HAS_CHROMIUM ? "panel behind a password" : `panel behind a password (skipped: ${SKIP_REASON})`, () => {
  const chromium = useChromium();

  it("loads with the right credentials, devices listed over the authenticated socket", async () => {
    const { port } = await startBuilder({ username: "esphome", password: "hunter2" }, await configDir({ kitchen: "", porch: "" }));
    const p = await openPanel(chromium.browser(), port, "light", { username: "esphome", password: "hunter2" });
    await p.page.goto(`http://127.0.0.1:${port}/`);
    await p.page.locator("esphome-devices-view li.device").nth(1).waitFor({ timeout: 15_000 });
    expect(await p.page.locator("esphome-devices-view li.device").count()).toBe(2);
    expect(p.errors).toEqual([]);
    await p.screenshot("password-signed-in");
    await p.context.close();
  });

  it("shows the 401 text and loads nothing with a wrong password", async () => {
    const { port } = await startBuilder({ username: "esphome", password: "hunter2" });
    const p = await openPanel(chromium.browser(), port, "light", { username: "esphome", password: "wrong" });
    const response = await p.page.goto(`http://127.0.0.1:${port}/`);
    expect(response?.status()).toBe(401);
    expect(await p.page.textContent("body")).toContain("needs its user name and password");
    expect(await p.page.locator("esphome-builder-app").count()).toBe(0);
    await p.context.close();
  });
});
