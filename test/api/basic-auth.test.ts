/**
 * The optional password of a standalone builder: every HTTP request and
 * WebSocket upgrade needs it, wrong guesses are slowed to a stop, and the
 * clients users have (a browser, a script with credentials in the URL, Home
 * Assistant's esphome-dashboard-api) get through with it.
 */
import { execFile, spawnSync } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { BasicAuth, MAX_TRACKED_PEERS, parseBasicAuth, peerKey, refusal } from "../../src/api/basic-auth.ts";
import { ROOT, STAND_IN, configDir, spawnBuilder, startBuilder } from "../helpers/builder.ts";
import { PING_BOUND_MS, describeRtts, expectResponsive, pinger } from "../helpers/ping.ts";
import { testPython } from "../helpers/python.ts";
import { missingTool } from "../helpers/tools.ts";

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("parseBasicAuth", () => {
  it("reads user and password (the password may contain ':')", () => {
    expect(parseBasicAuth(basic("esphome", "a:b:c"))).toEqual({ username: "esphome", password: "a:b:c" });
    expect(parseBasicAuth(`basic ${Buffer.from("u:p").toString("base64")}`)).toEqual({ username: "u", password: "p" });
  });

  it.each([undefined, "", "Bearer abc", "Basic", "Basic !!!", `Basic ${Buffer.from("no-colon").toString("base64")}`])("answers null for %j", (header) => {
    expect(parseBasicAuth(header)).toBeNull();
  });
});

describe("BasicAuth", () => {
  const make = (now: { t: number }, maxGlobalFailures = Number.POSITIVE_INFINITY) =>
    new BasicAuth({ credentials: { username: "esphome", password: "right" }, maxFailures: 3, maxGlobalFailures, windowMs: 60_000, now: () => now.t });

  it("lets the right user and password through and nothing else", () => {
    const auth = make({ t: 0 });
    expect(auth.check(basic("esphome", "right"), "10.0.0.2")).toBe("ok");
    expect(auth.check(basic("esphome", "wrong"), "10.0.0.2")).toBe("unauthorized");
    expect(auth.check(basic("admin", "right"), "10.0.0.2")).toBe("unauthorized");
    expect(auth.check(undefined, "10.0.0.2")).toBe("unauthorized");
  });

  it("refuses a peer after too many wrong passwords, even the right one, until the window passes; others are not affected", () => {
    const now = { t: 0 };
    const auth = make(now);
    for (let i = 0; i < 3; i++) expect(auth.check(basic("esphome", `guess${i}`), "10.0.0.9")).toBe("unauthorized");
    expect(auth.check(basic("esphome", "right"), "10.0.0.9")).toBe("too_many_attempts");
    expect(auth.check(basic("esphome", "right"), "10.0.0.2")).toBe("ok");
    now.t = 59_999;
    expect(auth.check(basic("esphome", "right"), "10.0.0.9")).toBe("too_many_attempts");
    now.t = 60_000;
    expect(auth.check(basic("esphome", "right"), "10.0.0.9")).toBe("ok");
  });

  it("does not count requests that carry no credentials (the browser has not asked yet)", () => {
    const auth = make({ t: 0 });
    for (let i = 0; i < 10; i++) auth.check(undefined, "10.0.0.3");
    expect(auth.check(basic("esphome", "right"), "10.0.0.3")).toBe("ok");
  });

  it("counts an IPv6 /64 as one peer, and an IPv4-mapped address as its IPv4 address", () => {
    expect(peerKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(peerKey("2001:0db8:0001:0002:ffff:ffff:ffff:ffff")).toBe("2001:db8:1:2::/64");
    expect(peerKey("fe80::1")).toBe("fe80:0:0:0::/64");
    expect(peerKey("::1")).toBe("0:0:0:0::/64");
    expect(peerKey("::ffff:10.0.0.7")).toBe("10.0.0.7");
    expect(peerKey("10.0.0.7")).toBe("10.0.0.7");
    const auth = make({ t: 0 });
    for (let i = 0; i < 3; i++) auth.check(basic("esphome", "x"), `2001:db8:1:2::${i + 1}`);
    expect(auth.check(basic("esphome", "right"), "2001:db8:1:2:ffff::9")).toBe("too_many_attempts");
    expect(auth.check(basic("esphome", "right"), "2001:db8:1:3::1")).toBe("ok");
  });

  it("never forgets a lockout to make room, and fails closed when every slot is one", () => {
    const now = { t: 0 };
    const auth = make(now);
    for (let i = 0; i < 3; i++) auth.check(basic("esphome", "x"), "10.9.9.9");
    // Many other addresses fail once each: the table fills and evicts, but not the lockout.
    for (let i = 0; i < MAX_TRACKED_PEERS + 10; i++) auth.check(basic("esphome", "x"), `10.1.${i >> 8}.${i & 255}`);
    expect(auth.check(basic("esphome", "right"), "10.9.9.9")).toBe("too_many_attempts");
    // A table of nothing but lockouts takes no new failures: a new address is refused outright.
    const full = make(now);
    for (let i = 0; i < MAX_TRACKED_PEERS; i++) for (let k = 0; k < 3; k++) full.check(basic("esphome", "x"), `10.2.${i >> 8}.${i & 255}`);
    expect(full.check(basic("esphome", "wrong"), "10.3.0.1")).toBe("too_many_attempts");
    expect(full.check(basic("esphome", "right"), "10.3.0.2")).toBe("ok");
    // Once the window has passed, the table takes failures again.
    now.t = 60_000;
    expect(full.check(basic("esphome", "wrong"), "10.3.0.1")).toBe("unauthorized");
  });

  it("spends a global budget: past it, only peers that signed in before may try, until the window ends", () => {
    const now = { t: 0 };
    const auth = make(now, 20);
    expect(auth.check(basic("esphome", "right"), "10.0.0.1")).toBe("ok");
    // Twenty addresses, each well under its own limit of 3.
    for (let i = 0; i < 20; i++) expect(auth.check(basic("esphome", "guess"), `10.5.0.${i}`)).toBe("unauthorized");
    expect(auth.check(basic("esphome", "right"), "10.5.1.1")).toBe("too_many_attempts");
    expect(auth.check(basic("esphome", "guess"), "10.5.1.2")).toBe("too_many_attempts");
    expect(auth.retryAfterSeconds("10.5.1.2")).toBe(60);
    // The owner's browser, which signed in before, keeps working.
    expect(auth.check(basic("esphome", "right"), "10.0.0.1")).toBe("ok");
    now.t = 30_000;
    expect(auth.retryAfterSeconds("10.5.1.2")).toBe(30);
    now.t = 60_000;
    expect(auth.check(basic("esphome", "right"), "10.5.1.1")).toBe("ok");
  });

  it("a known peer that guesses wrong is still held to its own limit", () => {
    const auth = make({ t: 0 }, 5);
    expect(auth.check(basic("esphome", "right"), "10.0.0.1")).toBe("ok");
    for (let i = 0; i < 3; i++) auth.check(basic("esphome", "x"), "10.0.0.1");
    expect(auth.check(basic("esphome", "right"), "10.0.0.1")).toBe("too_many_attempts");
  });

  it("says how long a locked-out peer has left", () => {
    const now = { t: 0 };
    const auth = make(now);
    for (let i = 0; i < 3; i++) auth.check(basic("esphome", "x"), "10.0.0.9");
    now.t = 45_500;
    expect(auth.retryAfterSeconds("10.0.0.9")).toBe(15);
    expect(refusal("too_many_attempts", 15)).toMatchObject({ status: 429, headers: { "Retry-After": "15" } });
  });

  it("refusals name what to do: 401 with a Basic challenge, 429 with Retry-After", () => {
    expect(refusal("unauthorized")).toMatchObject({ status: 401, headers: { "WWW-Authenticate": 'Basic realm="ESPHome Builder", charset="UTF-8"' } });
    expect(refusal("too_many_attempts")).toMatchObject({ status: 429, headers: { "Retry-After": "60" } });
  });
});

function get(port: number, urlPath: string, authorization?: string, localAddress?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const options = { host: "127.0.0.1", port, path: urlPath, headers: authorization === undefined ? {} : { authorization }, ...(localAddress === undefined ? {} : { localAddress }) };
    const req = http.get(options, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }); });
    });
    req.on("error", reject);
  });
}

/** Opens /ws and resolves with the HTTP status of a refused upgrade, or 101 and a devices/list reply. */
function openApi(url: string, headers: Record<string, string> = {}): Promise<{ status: number; devices?: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once("unexpected-response", (_req, res) => { resolve({ status: res.statusCode ?? 0 }); });
    ws.once("open", () => { ws.send(JSON.stringify({ command: "devices/list", message_id: 1 })); });
    ws.once("message", (data: Buffer) => {
      ws.close();
      resolve({ status: 101, devices: (JSON.parse(data.toString()) as { result: unknown }).result });
    });
    ws.once("error", (err) => { if (!err.message.includes("Unexpected server response")) reject(err); });
  });
}

describe("a builder started with a password", () => {
  it("asks for it on the panel, the API socket and downloads, and serves them with it", async () => {
    const { port } = await startBuilder({ username: "esphome", password: "hunter2" });
    const refused = await get(port, "/");
    expect(refused.status).toBe(401);
    expect(refused.headers["www-authenticate"]).toBe('Basic realm="ESPHome Builder", charset="UTF-8"');
    expect(refused.body).toContain("--password");
    expect((await get(port, "/", basic("esphome", "nope"))).status).toBe(401);
    const page = await get(port, "/", basic("esphome", "hunter2"));
    expect(page.status).toBe(200);
    expect(page.body).toContain("<title>ESPHome Builder</title>");
    // The download route is behind it too, before any token is looked at.
    expect((await get(port, "/api/firmware/download?token=x")).status).toBe(401);
    expect((await get(port, "/api/firmware/download?token=x", basic("esphome", "hunter2"))).status).toBe(403);

    expect((await openApi(`ws://127.0.0.1:${port}/ws`)).status).toBe(401);
    expect((await openApi(`ws://127.0.0.1:${port}/ws`, { authorization: basic("esphome", "wrong") })).status).toBe(401);
    const ok = await openApi(`ws://esphome:hunter2@127.0.0.1:${port}/ws`);
    expect(ok.status).toBe(101);
    expect(Array.isArray(ok.devices)).toBe(true);
    // Legacy WebSockets too.
    expect((await openApi(`ws://127.0.0.1:${port}/compile`)).status).toBe(401);
  });

  it("stops answering a guesser with 429 after ten wrong passwords", async () => {
    const { port } = await startBuilder({ username: "esphome", password: "hunter2" });
    for (let i = 0; i < 10; i++) expect((await get(port, "/devices", basic("esphome", `guess${i}`))).status).toBe(401);
    const blocked = await get(port, "/devices", basic("esphome", "hunter2"));
    expect(blocked.status).toBe(429);
    expect(blocked.headers["retry-after"]).toBe("60");
    expect((await openApi(`ws://esphome:hunter2@127.0.0.1:${port}/ws`)).status).toBe(429);
  });

  it("closes to new addresses once 100 wrong passwords came from many addresses, while the owner's signed-in browser keeps working", async () => {
    const { port } = await startBuilder({ username: "esphome", password: "hunter2" });
    expect((await get(port, "/devices", basic("esphome", "hunter2"))).status).toBe(200);
    // 120 loopback addresses (all of 127/8 is this machine), two guesses each: none reaches its own limit of ten.
    const statuses: number[] = [];
    for (let i = 0; i < 120; i++) {
      for (let k = 0; k < 2; k++) statuses.push((await get(port, "/devices", basic("esphome", `guess${i}-${k}`), `127.0.${1 + (i >> 8)}.${(i & 255) + 1}`)).status);
    }
    expect(statuses.filter((s) => s === 401)).toHaveLength(100);
    expect(statuses.slice(100).every((s) => s === 429)).toBe(true);
    const stranger = await get(port, "/devices", basic("esphome", "hunter2"), "127.0.9.9");
    expect(stranger.status).toBe(429);
    expect(Number(stranger.headers["retry-after"])).toBeGreaterThan(0);
    expect((await get(port, "/devices", basic("esphome", "hunter2"))).status).toBe(200);
  });

  it(`keeps answering its owner (95 % within ${PING_BOUND_MS} ms) while thousands of guesses arrive from hundreds of addresses at once`, { timeout: 60_000 }, async () => {
    const dir = await configDir({ kitchen: "" });
    const proc = await spawnBuilder(["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--no-mdns", "--esphome", STAND_IN, "--log-level", "error"], { ESPHOME_BUILDER_PASSWORD: "hunter2" });
    const owner = basic("esphome", "hunter2");
    expect((await get(proc.port, "/ping", owner)).status).toBe(200);
    const pings = await pinger(proc.port, { authorization: owner });
    const statuses = new Map<number, number>();
    let next = 0;
    const total = 3000;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        const k = (i % 400) + 1;
        const answer = await get(proc.port, "/devices", basic("esphome", `guess${i}`), `127.1.${k >> 8}.${k & 255}`);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: 32 }, worker));
    const floodMs = performance.now() - started;
    const rtts = await pings.stop();
    console.log(`password flood: ${total} guesses in ${floodMs.toFixed(0)} ms; the owner's ${describeRtts(rtts)}`);
    expect(statuses.get(401)).toBe(100);
    expect(statuses.get(429)).toBe(total - 100);
    expectResponsive(rtts, 5);
  });

  it("keeps the open behaviour without one", async () => {
    const { port } = await startBuilder();
    expect((await get(port, "/")).status).toBe(200);
    expect((await openApi(`ws://127.0.0.1:${port}/ws`)).status).toBe(101);
  });

  const python = testPython();
  const hasClient = spawnSync(python, ["-c", "import esphome_dashboard_api, aiohttp"]).status === 0;
  it.skipIf(missingTool(hasClient, "esphome-dashboard-api in .venv"))("lets the real esphome-dashboard-api client in with the credentials in its URL, and not without", { timeout: 60_000 }, async () => {
    const { port } = await startBuilder({ username: "esphome", password: "hunter2" }, await configDir({ kitchen: "" }));
    const run = (url: string): Promise<{ results: unknown[] }> =>
      new Promise((resolve, reject) => {
        execFile(python, [path.join(ROOT, "test", "ha", "dashboard_api_client.py"), url, JSON.stringify([{ do: "devices" }])], { timeout: 60_000 }, (err, stdout, stderr) => {
          if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
          else resolve(JSON.parse(stdout) as { results: unknown[] });
        });
      });
    const withCredentials = await run(`http://esphome:hunter2@127.0.0.1:${port}`);
    expect(withCredentials.results[0]).toMatchObject({ configured: [{ name: "kitchen" }] });
    const without = await run(`http://127.0.0.1:${port}`);
    expect(JSON.stringify(without.results[0])).toMatch(/401|Unauthorized/);
  });
});
