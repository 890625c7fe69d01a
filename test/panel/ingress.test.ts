/**
 * The panel behind a Home Assistant style ingress: a proxy that serves the
 * builder under `/api/hassio_ingress/<token>/` (prefix stripped, WebSocket
 * upgrades piped through), and a parent page that embeds it in an iframe with
 * HA's theme variables on its <html>, as the HA frontend does.
 */
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startBuilder } from "../helpers/builder.ts";
import { HAS_CHROMIUM, openPanel, setStandIn, SKIP_REASON, useChromium } from "./browser-helpers.ts";
import { missingTool } from "../helpers/tools.ts";

const PREFIX = "/api/hassio_ingress/Xy12_token";

const PARENT_PAGE = `<!doctype html>
<html style="--primary-color: #ff5722; --primary-background-color: #101418; --card-background-color: #1a1f24; --primary-text-color: #e6e6e6; --secondary-text-color: #a0a0a0">
<body style="margin:0"><iframe id="panel" src="${PREFIX}/" style="border:0;width:100vw;height:100vh"></iframe></body></html>`;

/** Serves the parent page at `/` and proxies `${PREFIX}/*` to the builder with the prefix stripped. */
async function ingressProxy(builderPort: number): Promise<number> {
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    if (url === "/") {
      res.writeHead(200, { "content-type": "text/html" }).end(PARENT_PAGE);
      return;
    }
    if (!url.startsWith(`${PREFIX}/`)) {
      res.writeHead(404).end();
      return;
    }
    const upstream = http.request(
      { host: "127.0.0.1", port: builderPort, path: url.slice(PREFIX.length), method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("upgrade", (req, socket, head) => {
    const url = req.url ?? "/";
    if (!url.startsWith(`${PREFIX}/`)) {
      socket.destroy();
      return;
    }
    const upstream = net.connect(builderPort, "127.0.0.1", () => {
      const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : (v ?? "")}`);
      upstream.write(`${req.method ?? "GET"} ${url.slice(PREFIX.length)} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n`);
      upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  afterEach(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

describe.skipIf(missingTool(HAS_CHROMIUM, "Chromium"))(HAS_CHROMIUM ? "panel under ingress" : `panel under ingress (skipped: ${SKIP_REASON})`, () => {
  const chromium = useChromium();

  it("works under an ingress path prefix inside HA's iframe and takes HA's theme from the parent", async () => {
    setStandIn({ ESPHOME_STANDIN_COMPILE_SECONDS: "0.2", ESPHOME_STANDIN_UPLOAD_SECONDS: "0.1", ESPHOME_STANDIN_FAIL: "", ESPHOME_STANDIN_EXTRA_LINES: "0" });
    const { port } = await startBuilder();
    const proxyPort = await ingressProxy(port);
    const p = await openPanel(chromium.browser(), proxyPort);
    const requests: string[] = [];
    p.page.on("request", (r) => requests.push(new URL(r.url()).pathname));
    await p.page.goto(`http://127.0.0.1:${proxyPort}/`);
    const frame = p.page.frameLocator("#panel");
    await frame.locator("esphome-devices-view li.device").first().waitFor();

    // Every request of the panel stayed under the prefix (relative URLs only).
    expect(requests.filter((r) => r !== "/").every((r) => r.startsWith(`${PREFIX}/`))).toBe(true);

    // HA's variables were copied from the parent; its dark background switched the panel to dark.
    const panel = p.page.frames().find((f) => f.url().includes(PREFIX));
    expect(panel).toBeDefined();
    const theme = await panel!.evaluate(() => ({
      mode: document.documentElement.dataset.theme,
      primary: getComputedStyle(document.documentElement).getPropertyValue("--primary-color").trim(),
    }));
    expect(theme).toEqual({ mode: "dark", primary: "#ff5722" });

    // A theme change in HA reaches the panel.
    await p.page.evaluate(() => {
      document.documentElement.style.setProperty("--primary-background-color", "#fafafa");
      document.documentElement.style.setProperty("--primary-color", "#009688");
    });
    await panel!.waitForFunction(() => document.documentElement.dataset.theme === "light");
    await expect(panel!.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue("--primary-color").trim())).resolves.toBe("#009688");

    // The WebSocket works through the proxy: an install runs to the end.
    await frame.getByRole("button", { name: "Install kitchen", exact: true }).click();
    await frame.locator('esphome-install-dialog md-list-item[data-method="ota"]').click();
    await frame.locator('esphome-install-dialog [data-result="success"]').waitFor({ timeout: 20_000 });
    expect(p.errors).toEqual([]);
    await p.context.close();
  }, 60_000);

  it("follows ?theme=dark without a parent page", async () => {
    const { port } = await startBuilder();
    const p = await openPanel(chromium.browser(), port);
    await p.page.goto(`http://127.0.0.1:${port}/?theme=dark`);
    await p.page.locator("esphome-devices-view").waitFor();
    await expect(p.page.evaluate(() => document.documentElement.dataset.theme)).resolves.toBe("dark");
    await p.page.goto(`http://127.0.0.1:${port}/?theme=light`);
    await p.page.locator("esphome-devices-view").waitFor();
    await expect(p.page.evaluate(() => document.documentElement.dataset.theme)).resolves.toBe("light");
    await p.context.close();
  }, 30_000);
});
