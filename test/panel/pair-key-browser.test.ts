/**
 * Pairing with a headless build server in the panel (real Chromium, real
 * builders in this process): the pair dialog asks for the key the build
 * server printed, groups it as it is typed, says a wrong one is wrong or
 * expired, and pairs with the right one; screenshots in light, dark and phone
 * width (test-results/screenshots).
 */
import { describe, expect, it, onTestFinished } from "vitest";
import { Builder } from "../../src/builder.ts";
import { configDir, startBuilder, testConfig } from "../helpers/builder.ts";
import { missingTool } from "../helpers/tools.ts";
import { HAS_CHROMIUM, openPanel, setStandIn, SKIP_REASON, useChromium, type Variant } from "./browser-helpers.ts";

describe.skipIf(missingTool(HAS_CHROMIUM, "Chromium"))(HAS_CHROMIUM ? "the pairing key in the pair dialog" : `the pairing key in the pair dialog (skipped: ${SKIP_REASON})`, () => {
  const chromium = useChromium();

  for (const variant of ["light", "dark", "phone"] as const satisfies readonly Variant[]) {
    it(`asks a headless build server's key, refuses a wrong one and pairs with the right one (${variant})`, async () => {
      setStandIn({ ESPHOME_STANDIN_COMPILE_SECONDS: "0.2", ESPHOME_STANDIN_FAIL: "" });
      const server = await startHeadless();
      const key = server.key;
      const a = await startBuilder({ label: "Laptop" });
      const p = await openPanel(chromium.browser(), a.port, variant);
      const { page } = p;
      await page.goto(`http://127.0.0.1:${a.port}/#build-servers`);
      const view = page.locator("esphome-build-servers-view");
      await view.locator("md-outlined-button.add-by-address").click();
      const pair = page.locator("esphome-pair-dialog");
      await pair.locator('md-dialog[data-step="address"]').waitFor();
      await pair.locator("md-outlined-text-field.host input").fill("127.0.0.1");
      await pair.locator("md-outlined-text-field.port input").fill(String(server.port));
      await pair.locator("md-filled-button.next").click();
      await pair.locator('md-dialog[data-step="confirm"]').waitFor();

      // The key field: Pair stays disabled until 16 characters are there; typing is grouped as printed.
      const field = pair.locator("md-outlined-text-field.pairing-key input");
      await field.waitFor();
      const confirm = pair.locator("md-filled-button.confirm");
      await expect(confirm.getAttribute("disabled")).resolves.not.toBeNull();
      await field.pressSequentially("abcd efgh jk");
      await expect(field.inputValue()).resolves.toBe("ABCD-EFGH-JK");
      await p.screenshot("pair-dialog-key-typing");

      // A wrong key (complete, well-formed): the build server does not take it, and the dialog says why.
      await field.fill("");
      await field.pressSequentially("AAAAAAAAAAAAAAAA");
      await expect(field.inputValue()).resolves.toBe("AAAA-AAAA-AAAA-AAAA");
      await expect(confirm.getAttribute("disabled")).resolves.toBeNull();
      await confirm.click();
      const refused = pair.locator('[data-error="key"]');
      await refused.waitFor();
      await expect(refused.textContent()).resolves.toContain("did not take the pairing key");
      await expect(pair.locator("md-outlined-text-field.pairing-key").getAttribute("supporting-text")).resolves.toContain("wrong or expired");
      await p.screenshot("pair-dialog-key-wrong");

      // The right key, typed in lower case: paired at once, no approval step on the build server.
      await field.fill("");
      await field.pressSequentially(key.toLowerCase());
      await pair.locator('[data-error="key"]').waitFor({ state: "detached" });
      await confirm.click();
      await pair.locator('[data-result="paired"]').waitFor({ timeout: 15_000 });
      await expect(pair.locator('[data-result="paired"]').textContent()).resolves.toContain("Paired with Headless box");
      await p.screenshot("pair-dialog-key-paired");
      expect(server.builder.remote.receiver.peers()).toEqual([expect.objectContaining({ status: "approved", label: "Laptop" })]);
      expect(p.errors.filter((e) => !e.includes("favicon"))).toEqual([]);
      await p.context.close();
    }, 60_000);
  }
});

/** A headless build server in this process; what it prints (the key's JSON line) comes to the test. */
async function startHeadless(): Promise<{ builder: Builder; key: string; port: number }> {
  const printed: string[] = [];
  const builder = new Builder(testConfig(await configDir({}), { label: "Headless box", remoteBuildOnly: true }), { remoteBuildOnly: { write: (t) => printed.push(t) } });
  await builder.start();
  onTestFinished(() => builder.stop());
  const line = printed.join("").split("\n").find((l) => l.includes('"pairing_key"')) ?? "{}";
  return { builder, key: (JSON.parse(line) as { pairing_key: string }).pairing_key, port: builder.remote.receiver.port ?? 0 };
}
