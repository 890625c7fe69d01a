/**
 * Real Chromium for the panel's browser tests (Debian's /usr/bin/chromium,
 * driven by playwright-core), loopback only.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { buildPanel, type PanelBuild } from "../../panel/build.ts";
import { ROOT } from "../helpers/builder.ts";

export const CHROMIUM = "/usr/bin/chromium";
export const HAS_CHROMIUM = existsSync(CHROMIUM);
export const SKIP_REASON = `${CHROMIUM} is missing: install Debian's chromium (npm run test:setup does it as root)`;
export const SCREENSHOTS = path.join(ROOT, "test-results", "screenshots");

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--font-render-hinting=none",
    ],
  });
}

/**
 * For a describe block: builds the panel (when stale) and starts Chromium
 * before its tests, closes Chromium after them.
 */
export function useChromium(): { browser(): Browser; build(): PanelBuild } {
  let browser: Browser | undefined;
  let build: PanelBuild | undefined;
  beforeAll(async () => {
    build = await buildPanel({ ifStale: true });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });
  return {
    browser: () => {
      if (browser === undefined) throw new Error("Chromium is not running (used outside a test?)");
      return browser;
    },
    build: () => {
      if (build === undefined) throw new Error("the panel was not built (used outside a test?)");
      return build;
    },
  };
}

export type Variant = "light" | "dark" | "phone";

export const VARIANTS: Readonly<Record<Variant, { viewport: { width: number; height: number }; colorScheme: "light" | "dark" }>> = {
  light: { viewport: { width: 1280, height: 800 }, colorScheme: "light" },
  dark: { viewport: { width: 1280, height: 800 }, colorScheme: "dark" },
  phone: { viewport: { width: 390, height: 844 }, colorScheme: "light" },
};

export interface PanelPage {
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and console errors seen so far. */
  errors: string[];
  screenshot(name: string): Promise<void>;
}

/** A fresh context and page on the builder at `port`; only loopback requests are allowed. */
export async function openPanel(
  browser: Browser,
  port: number,
  variant: Variant = "light",
  httpCredentials?: { username: string; password: string },
): Promise<PanelPage> {
  const { viewport, colorScheme } = VARIANTS[variant];
  const context = await browser.newContext({ viewport, colorScheme, acceptDownloads: true, deviceScaleFactor: 1, ...(httpCredentials === undefined ? {} : { httpCredentials }) });
  // Loopback only: anything but this builder is refused.
  await context.route((url) => !(url.protocol === "http:" && url.hostname === "127.0.0.1" && url.port === String(port)), (route) => route.abort());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console: ${msg.text()}`);
  });
  await mkdir(SCREENSHOTS, { recursive: true });
  return {
    context,
    page,
    errors,
    screenshot: async (name) => {
      // No hover or ripple left over from the last click, animations settled.
      await page.mouse.move(1, viewport.height - 2);
      await page.waitForTimeout(350);
      await page.screenshot({ path: path.join(SCREENSHOTS, `${name}-${variant}.png`) });
    },
  };
}

export function setStandIn(env: Record<string, string>): void {
  for (const [k, v] of Object.entries(env)) process.env[k] = v;
}
