/**
 * The DNS-rebinding guard. Under rebinding a page's own name resolves to the
 * builder, so its requests arrive with `Host: evil.example` and a matching
 * `Origin: http://evil.example`; the builder must refuse them all, on every
 * route and every WebSocket, while the names a user really uses keep working.
 */
import http from "node:http";
import os from "node:os";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { HostPolicy, hostnameOf, normaliseAllowedHost, type RequestLike } from "../../src/api/host-guard.ts";
import { STAND_IN, configDir, spawnBuilder } from "../helpers/builder.ts";

function fakeRequest(headers: http.IncomingHttpHeaders, peer = "127.0.0.1"): RequestLike {
  return { headers, socket: { remoteAddress: peer } };
}

describe("hostnameOf", () => {
  it.each([
    ["127.0.0.1:6052", "127.0.0.1"],
    ["LOCALHOST", "localhost"],
    ["[::1]:6052", "::1"],
    ["[::1]", "::1"],
    ["builder.lan.:6052", "builder.lan"],
    ["my-pc", "my-pc"],
  ])("reads %j as %j", (header, name) => {
    expect(hostnameOf(header)).toBe(name);
  });

  it.each(["", ":6052", "evil.example:port", "[::1", "[nope]:1", "a b", "evil..example", "x/y"])("refuses %j", (header) => {
    expect(hostnameOf(header)).toBeNull();
  });

  it("normalises --allowed-hosts entries, wildcards only over a domain", () => {
    expect(normaliseAllowedHost(" Builder.LAN. ")).toBe("builder.lan");
    expect(normaliseAllowedHost("*.lan")).toBeNull();
    expect(normaliseAllowedHost("*.home.lan")).toBe("*.home.lan");
    expect(normaliseAllowedHost("http://x")).toBeNull();
  });
});

describe("HostPolicy", () => {
  const policy = new HostPolicy({ hostname: "nas", allowedHosts: ["builder.lan", "*.home.arpa"], trustedProxies: ["10.0.0.5"], ingressProxies: ["172.30.32.2"] });

  it("answers IP literals, localhost, this machine's name and the names the user listed", () => {
    for (const host of ["127.0.0.1:6052", "192.168.1.20:6052", "[fe80::1]:6052", "localhost:6052", "app.localhost", "nas:6052", "nas.local:6052", "builder.lan", "x.home.arpa:1"]) {
      expect(policy.checkHost(fakeRequest({ host })), host).toEqual({ ok: true });
    }
  });

  it("refuses any other name, naming the flag that would allow it", () => {
    const verdict = policy.checkHost(fakeRequest({ host: "evil.example:6052" }));
    expect(verdict).toMatchObject({ ok: false });
    expect(verdict.ok ? "" : verdict.reason).toContain("--allowed-hosts evil.example");
    expect(policy.checkHost(fakeRequest({ host: "home.arpa" })).ok).toBe(false);
    expect(policy.checkHost(fakeRequest({ host: "nas.evil.example" })).ok).toBe(false);
  });

  it("believes X-Forwarded-Host only from a trusted proxy", () => {
    const spoofed = fakeRequest({ host: "127.0.0.1:6052", "x-forwarded-host": "evil.example", origin: "http://evil.example" });
    expect(policy.checkHost(spoofed).ok).toBe(true);
    expect(policy.checkOrigin(spoofed).ok).toBe(false);
    const proxied = fakeRequest({ host: "127.0.0.1:6052", "x-forwarded-host": "builder.lan, other", origin: "https://builder.lan" }, "10.0.0.5");
    expect(policy.checkHost(proxied).ok).toBe(true);
    expect(policy.checkOrigin(proxied).ok).toBe(true);
    expect(policy.checkHost(fakeRequest({ host: "127.0.0.1", "x-forwarded-host": "evil.example" }, "::ffff:10.0.0.5")).ok).toBe(false);
  });

  it("wants a browser's Origin to be the very host it addressed, by an allowed name", () => {
    expect(policy.checkOrigin(fakeRequest({ host: "127.0.0.1:6052", origin: "http://127.0.0.1:6052" })).ok).toBe(true);
    expect(policy.checkOrigin(fakeRequest({ host: "LOCALHOST:80", origin: "http://localhost" })).ok).toBe(true);
    expect(policy.checkOrigin(fakeRequest({ host: "127.0.0.1:6052", origin: "http://127.0.0.1:6053" })).ok).toBe(false);
    expect(policy.checkOrigin(fakeRequest({ host: "127.0.0.1:6052", origin: "http://localhost:6052" })).ok).toBe(false);
    expect(policy.checkOrigin(fakeRequest({ host: "127.0.0.1:6052", origin: "null" })).ok).toBe(false);
    expect(policy.checkOrigin(fakeRequest({ host: "127.0.0.1:6052", origin: "file:///x" })).ok).toBe(false);
    expect(policy.checkOrigin(fakeRequest({ host: "127.0.0.1:6052" })).ok).toBe(true);
  });

  it("lets the add-on's ingress proxy carry Home Assistant's name, held to its forwarded Host", () => {
    const ingress = (origin: string) => fakeRequest({ host: "homeassistant.local:8123", "x-forwarded-host": "homeassistant.local:8123", origin }, "172.30.32.2");
    expect(policy.checkHost(ingress("http://homeassistant.local:8123")).ok).toBe(true);
    expect(policy.checkOrigin(ingress("http://homeassistant.local:8123")).ok).toBe(true);
    expect(policy.checkOrigin(ingress("http://evil.example")).ok).toBe(false);
  });

  it("takes exact trusted origins", () => {
    const trusting = new HostPolicy({ hostname: "nas", trustedOrigins: ["https://dash.example"] });
    expect(trusting.checkOrigin(fakeRequest({ host: "127.0.0.1:6052", origin: "https://dash.example" })).ok).toBe(true);
  });
});

interface Answer {
  status: number;
  body: string;
}

function get(port: number, urlPath: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => { resolve({ status: res.statusCode ?? 0, body }); });
    });
    req.on("error", reject);
  });
}

/** Opens a WebSocket with the given Host and Origin; 101 and the first reply, or the refusal's status. */
function openSocket(port: number, urlPath: string, headers: Record<string, string>, first?: unknown): Promise<{ status: number; reply?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${urlPath}`, { headers });
    ws.once("unexpected-response", (_req, res) => { resolve({ status: res.statusCode ?? 0 }); });
    ws.once("open", () => {
      if (first === undefined) {
        ws.close();
        resolve({ status: 101 });
        return;
      }
      ws.send(JSON.stringify(first));
    });
    ws.once("message", (data: Buffer) => {
      ws.close();
      resolve({ status: 101, reply: data.toString() });
    });
    ws.once("error", (err) => { if (!err.message.includes("Unexpected server response")) reject(err); });
  });
}

async function builderProcess(extra: string[] = []) {
  const dir = await configDir({ kitchen: "" });
  const proc = await spawnBuilder(["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--no-mdns", "--esphome", STAND_IN, ...extra]);
  return { ...proc, dir };
}

describe("a running builder under DNS rebinding", () => {
  it("refuses every route and WebSocket to a page whose name was rebound to it, and changes nothing", async () => {
    const { port, dir } = await builderProcess();
    const evil = { host: `evil.example:${port}`, origin: `http://evil.example:${port}` };
    for (const route of ["/", "/index.html", "/devices", "/ping", "/json-config?configuration=kitchen.yaml", "/api/firmware/download?token=x"]) {
      const answer = await get(port, route, evil);
      expect(answer.status, route).toBe(403);
      expect(answer.body).toContain("--allowed-hosts evil.example");
    }
    const pair = { command: "remote_build/preview_pair", message_id: 1, args: { hostname: "127.0.0.1", port: 1 } };
    expect(await openSocket(port, "/ws", evil, pair)).toEqual({ status: 403 });
    expect(await openSocket(port, "/ws", evil, { command: "firmware/compile", message_id: 1, args: { configuration: "kitchen.yaml" } })).toEqual({ status: 403 });
    expect(await openSocket(port, "/compile", evil)).toEqual({ status: 403 });
    expect(await openSocket(port, "/upload", evil)).toEqual({ status: 403 });
    // Nothing was queued: the owner's own view shows no job.
    const own = { host: `127.0.0.1:${port}`, origin: `http://127.0.0.1:${port}` };
    const jobs = await openSocket(port, "/ws", own, { command: "firmware/get_jobs", message_id: 2 });
    expect(jobs.status).toBe(101);
    expect(JSON.parse(jobs.reply ?? "{}")).toMatchObject({ message_id: 2, result: [] });
    expect(await readFile(path.join(dir, "kitchen.yaml"), "utf8")).toContain("name: kitchen");
  });

  it("refuses a foreign page's socket even when it addresses the builder by IP, and ignores a spoofed X-Forwarded-Host", async () => {
    const { port } = await builderProcess();
    expect((await openSocket(port, "/ws", { host: `127.0.0.1:${port}`, origin: "http://evil.example" })).status).toBe(403);
    expect((await openSocket(port, "/ws", { host: `127.0.0.1:${port}`, "x-forwarded-host": "evil.example", origin: "http://evil.example" })).status).toBe(403);
    expect((await get(port, "/devices", { host: `127.0.0.1:${port}`, origin: "http://evil.example" })).status).toBe(403);
  });

  it("serves the names people use: the IP, localhost, this machine's name, and names given with --allowed-hosts", async () => {
    const { port } = await builderProcess(["--allowed-hosts", "builder.lan,*.home.arpa"]);
    const machine = os.hostname().toLowerCase();
    for (const name of ["127.0.0.1", "localhost", machine, "builder.lan", "esphome.home.arpa"]) {
      const host = `${name}:${port}`;
      expect((await get(port, "/devices", { host })).status, name).toBe(200);
      const reply = await openSocket(port, "/ws", { host, origin: `http://${host}` }, { command: "devices/list", message_id: 1 });
      expect(reply.status, name).toBe(101);
      expect(reply.reply).toContain('"result"');
    }
    expect((await get(port, "/devices", { host: `home.arpa:${port}` })).status).toBe(403);
  });

  it("believes a reverse proxy's X-Forwarded-Host only with --trusted-proxies, and still holds it to the list", async () => {
    const { port } = await builderProcess(["--trusted-proxies", "127.0.0.1", "--allowed-hosts", "builder.example"]);
    const proxied = (name: string) => ({ host: `127.0.0.1:${port}`, "x-forwarded-host": name, origin: `https://${name}` });
    expect((await openSocket(port, "/ws", proxied("builder.example"))).status).toBe(101);
    expect((await openSocket(port, "/ws", proxied("evil.example"))).status).toBe(403);
    expect((await get(port, "/devices", proxied("evil.example"))).status).toBe(403);
  });

  it("refuses a bad --allowed-hosts entry at start, naming the flag", async () => {
    await expect(builderProcess(["--allowed-hosts", "http://x"])).rejects.toThrow(/--allowed-hosts must list host names/);
  });
});
