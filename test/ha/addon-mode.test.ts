/**
 * The builder as a Home Assistant add-on, against a stand-in Supervisor on
 * loopback: the ingress port comes from the Supervisor, the legacy API is
 * announced by discovery, entities and events go through the Core proxy,
 * automation commands come from stdin and from the event, the build-server
 * option is applied, and the listener serves only the ingress peer (plus the
 * legacy API to Home Assistant Core on the loopback).
 */
import { readFile } from "node:fs/promises";
import http from "node:http";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from "vitest";
import WebSocket from "ws";
import type { ApiServices } from "../../src/api/commands.ts";
import { HttpServer } from "../../src/api/http-server.ts";
import { HostPolicy } from "../../src/api/host-guard.ts";
import { Builder } from "../../src/builder.ts";
import type { BuilderConfig } from "../../src/config.ts";
import { isTerminal } from "../../src/firmware/job.ts";
import { ENTITY_IDS } from "../../src/ha/publisher.ts";
import { setLogSink } from "../../src/logger.ts";
import { configDir, testConfig } from "../helpers/builder.ts";
import { tempDir, waitFor } from "../helpers/tmp.ts";
import { FakeSupervisor } from "./fake-supervisor.ts";
import { freePort } from "./ha-core.ts";

/** The "Supervisor's ingress address" for these tests: another loopback address. */
const INGRESS = "127.0.0.2";
const STRANGER = "127.0.0.3";

beforeEach(() => {
  vi.stubEnv("ESPHOME_STANDIN_COMPILE_SECONDS", "0.2");
  vi.stubEnv("ESPHOME_STANDIN_UPLOAD_SECONDS", "0.1");
  vi.stubEnv("ESPHOME_STANDIN_FAIL", "");
});
afterEach(() => {
  vi.unstubAllEnvs();
});

async function addonBuilder(overrides: Partial<BuilderConfig> = {}, dir?: string) {
  const supervisor = new FakeSupervisor("sv-token", await freePort());
  await supervisor.start();
  onTestFinished(async () => { await supervisor.stop(); });
  const stdin = new PassThrough();
  const folder = dir ?? (await configDir({ kitchen: "", office: "" }));
  const builder = new Builder(
    testConfig(folder, {
      addon: true,
      supervisorToken: "sv-token",
      supervisorUrl: supervisor.url,
      portFromSupervisor: true,
      ingressAddresses: [INGRESS],
      stdinCommands: true,
      ...overrides,
    }),
    { stdin, haTimings: { retryMinMs: 100, retryMaxMs: 500, debounceMs: 50, publishRetryMinMs: 100 } },
  );
  const listening = await builder.start();
  onTestFinished(async () => { await builder.stop(); });
  return { builder, supervisor, stdin, port: listening.port, dir: folder };
}

function request(port: number, opts: { path: string; from: string; headers?: Record<string, string> }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: opts.path, localAddress: opts.from, headers: opts.headers ?? {} }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body }); });
    });
    req.on("error", reject);
  });
}

function upgrade(port: number, urlPath: string, from: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${urlPath}`, { localAddress: from, headers });
    ws.on("open", () => {
      ws.close();
      resolve(101);
    });
    ws.on("unexpected-response", (_req, res) => { resolve(res.statusCode ?? 0); });
    ws.on("error", () => { resolve(0); });
  });
}

describe("add-on mode with a stand-in Supervisor", () => {
  it("listens on the ingress port the Supervisor names and announces the dashboard API by discovery", async () => {
    const { supervisor, port } = await addonBuilder();
    expect(port).toBe(supervisor.ingressPort);
    await waitFor(() => supervisor.requests.some((r) => r.path === "/discovery"), 5_000, "the discovery call");
    const discovery = supervisor.requests.find((r) => r.path === "/discovery");
    expect(discovery).toMatchObject({ method: "POST", auth: "Bearer sv-token", body: { service: "esphome", config: { host: "127.0.0.1", port } } });
  });

  it("names itself after the Home Assistant host (the Supervisor's /info) when the label option is empty", async () => {
    const { builder, supervisor } = await addonBuilder({ label: "container-hostname", labelFromSupervisor: true });
    expect(supervisor.requests.some((r) => r.path === "/info" && r.auth === "Bearer sv-token")).toBe(true);
    expect(builder.info().label).toBe("homeassistant");
    expect(builder.remote.identityView().label).toBe("homeassistant");
  });

  it("keeps a label it was given and does not ask for the host's name", async () => {
    const { builder, supervisor } = await addonBuilder({ label: "Garage Pi", labelFromSupervisor: false });
    expect(builder.info().label).toBe("Garage Pi");
    expect(supervisor.requests.some((r) => r.path === "/info")).toBe(false);
  });

  it.each([
    ["names no host", (s: FakeSupervisor) => { s.hostname = null; }, 1, "could not read the host's name"],
    ["fails (three tries)", (s: FakeSupervisor) => { s.infoDown = true; }, 3, "could not read the host's name from the Supervisor: GET /info: HTTP 500 System is not ready"],
  ])("keeps the container's host name, with a warning, when the Supervisor %s", async (_what, breakIt, calls, warning) => {
    const logs: string[] = [];
    onTestFinished(setLogSink((line) => logs.push(line)));
    const supervisor = new FakeSupervisor("sv-token", await freePort());
    breakIt(supervisor);
    await supervisor.start();
    onTestFinished(async () => { await supervisor.stop(); });
    const builder = new Builder(testConfig(await configDir(), { addon: true, supervisorToken: "sv-token", supervisorUrl: supervisor.url, portFromSupervisor: true, label: "container-hostname", labelFromSupervisor: true }));
    await builder.start();
    onTestFinished(async () => { await builder.stop(); });
    expect(builder.info().label).toBe("container-hostname");
    expect(supervisor.requests.filter((r) => r.path === "/info")).toHaveLength(calls);
    expect(logs.some((l) => l.includes("no Home Assistant host name from the Supervisor: this builder is 'container-hostname'"))).toBe(true);
    if (calls > 1) expect(logs.some((l) => l.includes(warning))).toBe(true);
  });

  it("does not announce itself when home_assistant_dashboard_integration is off", async () => {
    const { supervisor } = await addonBuilder({ dashboardIntegration: false });
    await waitFor(() => supervisor.requests.some((r) => r.path === "/addons/self/info"), 5_000, "the info call");
    await new Promise((r) => setTimeout(r, 300));
    expect(supervisor.requests.some((r) => r.path === "/discovery")).toBe(false);
  });

  it("publishes the entities and job events through the Supervisor's Core proxy", async () => {
    const { builder, supervisor } = await addonBuilder();
    await waitFor(() => Object.values(ENTITY_IDS).every((id) => supervisor.states(id).length > 0), 5_000, "all four entities");
    expect(supervisor.states(ENTITY_IDS.building)[0]).toMatchObject({ state: "off", attributes: { device_class: "running" } });
    const job = await builder.queue.enqueue({ configuration: "kitchen.yaml", job_type: "compile" });
    await waitFor(() => supervisor.requests.some((r) => r.path === "/core/api/events/esphome_builder_job_completed"), 10_000, "the completed event");
    const events = supervisor.requests.filter((r) => r.path.startsWith("/core/api/events/")).map((r) => r.path.slice("/core/api/events/".length));
    expect(events).toEqual(["esphome_builder_job_queued", "esphome_builder_job_started", "esphome_builder_job_completed"]);
    expect(supervisor.requests.find((r) => r.path.endsWith("job_completed"))).toMatchObject({ auth: "Bearer sv-token", body: { job_id: job.job_id, configuration: "kitchen.yaml", type: "compile", source: "local", error: null } });
  });

  it("runs commands from stdin (hassio.addon_stdin) and from the esphome_builder_command event; refuses the rest", async () => {
    const logs: string[] = [];
    const restore = setLogSink((line) => logs.push(line));
    onTestFinished(restore);
    const { builder, supervisor, stdin } = await addonBuilder();
    // Home Assistant JSON-encodes the input: a dict arrives as an object, a string as a JSON string.
    stdin.write('{"command": "install", "configuration": "kitchen.yaml"}\n');
    stdin.write(`${JSON.stringify(JSON.stringify({ command: "compile", configuration: "office.yaml" }))}\n`);
    for (const bad of ["not json", '"reboot"', '{"command": "format_disk"}', '{"command": "install"}', '{"command": "install", "configuration": "x/../../y.yaml"}', '[1, 2]', '{"command": "install_bulk", "configurations": "all", "port": "/dev/ttyUSB0"}']) {
      stdin.write(`${bad}\n`);
    }
    await waitFor(() => builder.queue.list().length === 2, 5_000, "the two stdin jobs");
    await waitFor(() => supervisor.subscribers("esphome_builder_command") > 0, 5_000, "the event subscription");
    supervisor.fire("esphome_builder_command", { command: "clean", configuration: "kitchen.yaml" });
    supervisor.fire("esphome_builder_command", { command: "clean", configuration: "ghost.yaml" });
    await waitFor(() => builder.queue.list().length === 3, 5_000, "the event job");
    await new Promise((r) => setTimeout(r, 200));
    expect(builder.queue.list().map((j) => `${j.job_type} ${j.configuration}`).sort()).toEqual(["clean kitchen.yaml", "compile office.yaml", "install kitchen.yaml"]);
    for (const reason of ["not JSON", 'unknown command "format_disk"', "install: configuration:", "must be a file name", "expected a JSON object", "serial port"]) {
      expect(logs.some((l) => l.includes("refused") && l.includes(reason)), reason).toBe(true);
    }
    expect(logs.some((l) => l.includes("ghost.yaml does not exist") || l.includes("Configuration ghost.yaml does not exist"))).toBe(true);

    // install_bulk "all", then cancel one of them: in order, one at a time.
    await waitFor(() => builder.queue.list().every((j) => isTerminal(j.status)), 10_000, "the first jobs");
    vi.stubEnv("ESPHOME_STANDIN_COMPILE_SECONDS", "5");
    stdin.write('{"command": "install_bulk", "configurations": "all"}\n');
    await waitFor(() => builder.queue.list().filter((j) => j.job_type === "install" && !isTerminal(j.status)).length === 2, 5_000, "the bulk install");
    const office = builder.queue.list().find((j) => j.job_type === "install" && j.configuration === "office.yaml" && !isTerminal(j.status))!;
    stdin.write(`${JSON.stringify({ command: "cancel", job_id: office.job_id })}\n`);
    await waitFor(() => builder.queue.get(office.job_id)?.status === "cancelled", 5_000, "the cancel");
  });

  it("republishes everything when Home Assistant comes back behind the Supervisor", { timeout: 60_000 }, async () => {
    const { supervisor } = await addonBuilder();
    const queue = (): number => supervisor.states(ENTITY_IDS.queue).length;
    const pairing = (): number => supervisor.states(ENTITY_IDS.pairingRequests).length;
    await waitFor(() => queue() >= 1 && pairing() >= 1, 5_000, "the first publish");
    // Counted when Core goes away: a publish may be under way (the outage can cut it in
    // the middle), but after Core is back every entity must be published again.
    const before = { queue: queue(), pairing: pairing() };
    supervisor.coreDown = true;
    supervisor.dropSockets();
    await new Promise((r) => setTimeout(r, 300));
    supervisor.coreDown = false;
    await waitFor(() => queue() > before.queue && pairing() > before.pairing, 15_000, "the republish");
  });

  it("applies the build_server option when it changes, and leaves a panel choice alone otherwise", async () => {
    const dir = await configDir();
    const dataDir = path.join(await tempDir(), "data");
    const first = await addonBuilder({ buildServer: true, dataDir }, dir);
    expect(first.builder.remote.receiver.enabled).toBe(true);
    expect(JSON.parse(await readFile(path.join(first.builder.paths.stateDir, "addon-options.json"), "utf8"))).toEqual({ build_server: true });
    // The user turns it off in the panel; a restart with the same option keeps it off.
    await first.builder.remote.receiver.setEnabled(false);
    await first.builder.stop();
    const second = await addonBuilder({ buildServer: true, dataDir }, dir);
    expect(second.builder.remote.receiver.enabled).toBe(false);
    await second.builder.stop();
    // Changing the option is a new choice: it applies.
    const third = await addonBuilder({ buildServer: false, dataDir }, dir);
    expect(third.builder.remote.receiver.enabled).toBe(false);
    await third.builder.stop();
    const fourth = await addonBuilder({ buildServer: true, dataDir }, dir);
    expect(fourth.builder.remote.receiver.enabled).toBe(true);
  });
});

describe("ingress security in add-on mode", () => {
  it("serves the panel, its API and downloads only to the ingress peer", async () => {
    const { port } = await addonBuilder();
    expect((await request(port, { path: "/", from: INGRESS })).status).toBe(200);
    const refused = await request(port, { path: "/", from: STRANGER });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatch(/ingress/);
    expect((await request(port, { path: "/", from: "127.0.0.1" })).status).toBe(403);
    expect((await request(port, { path: "/api/firmware/download?token=x", from: STRANGER })).status).toBe(403);
    expect(await upgrade(port, "/ws", INGRESS)).toBe(101);
    expect(await upgrade(port, "/ws", STRANGER)).toBe(403);
    expect(await upgrade(port, "/ws", "127.0.0.1")).toBe(403);
  });

  it("holds the loopback legacy API to the rebinding guard, and the ingress proxy's Origin to its forwarded Host", async () => {
    const { port } = await addonBuilder();
    // A browser on the Home Assistant host, on a page whose name was rebound to the loopback.
    const rebound = await request(port, { path: "/json-config?configuration=kitchen.yaml", from: "127.0.0.1", headers: { host: `evil.example:${port}` } });
    expect(rebound.status).toBe(403);
    expect(await upgrade(port, "/compile", "127.0.0.1", { host: `evil.example:${port}`, origin: `http://evil.example:${port}` })).toBe(403);
    // Home Assistant's ingress forwards the user's own Host and Origin, with X-Forwarded-Host.
    const ha = { host: "homeassistant.local:8123", "x-forwarded-host": "homeassistant.local:8123" };
    expect(await upgrade(port, "/ws", INGRESS, { ...ha, origin: "http://homeassistant.local:8123" })).toBe(101);
    expect(await upgrade(port, "/ws", INGRESS, { ...ha, origin: "http://evil.example" })).toBe(403);
  });

  it("serves the legacy dashboard API to Home Assistant Core on the loopback, and to nobody else", async () => {
    const { port } = await addonBuilder();
    const devices = await request(port, { path: "/devices", from: "127.0.0.1" });
    expect(devices.status).toBe(200);
    expect((JSON.parse(devices.body) as { configured: unknown[] }).configured).toHaveLength(2);
    expect((await request(port, { path: "/devices", from: INGRESS })).status).toBe(200);
    expect((await request(port, { path: "/devices", from: STRANGER })).status).toBe(403);
    expect(await upgrade(port, "/compile", "127.0.0.1")).toBe(101);
    expect(await upgrade(port, "/compile", STRANGER)).toBe(403);
  });

  it("keeps redirects under the X-Ingress-Path prefix", async () => {
    const panelDir = await tempDir();
    await mkdir(path.join(panelDir, "assets"));
    await writeFile(path.join(panelDir, "index.html"), "<!doctype html><title>x</title>");
    await writeFile(path.join(panelDir, "assets", "index.html"), "asset");
    const server = new HttpServer({ services: {} as ApiServices, host: "127.0.0.1", port: 0, panelDir, access: { full: [INGRESS], legacy: [] }, hosts: new HostPolicy({ ingressProxies: [INGRESS] }) });
    const port = await server.start();
    onTestFinished(async () => { await server.stop(); });
    const behindIngress = await request(port, { path: "/assets", from: INGRESS, headers: { "X-Ingress-Path": "/api/hassio_ingress/tok123" } });
    expect(behindIngress.status).toBe(301);
    expect(behindIngress.headers.location).toBe("/api/hassio_ingress/tok123/assets/");
    const forged = await request(port, { path: "/assets", from: INGRESS, headers: { "X-Ingress-Path": "https://evil.example" } });
    expect(forged.headers.location).toBe("/assets/");
  });
});
