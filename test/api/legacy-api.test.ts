/**
 * The legacy dashboard API, driven by the real `esphome-dashboard-api` package
 * (what Home Assistant's ESPHome integration uses for its update entities) and
 * by hand for the edges the client never sends.
 */
import { execFile, spawnSync } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import type { Builder } from "../../src/builder.ts";
import { resolvePaths } from "../../src/paths.ts";
import { ROOT, STAND_IN, configDir, spawnBuilder, startBuilder } from "../helpers/builder.ts";
import { testPython } from "../helpers/python.ts";
import { REAL_ESPHOME, describeNeeding, realEsphomeVersion } from "../real-device/esphome.ts";
import { waitFor } from "../helpers/tmp.ts";
import { missingTool } from "../helpers/tools.ts";

const CLIENT = path.join(ROOT, "test", "ha", "dashboard_api_client.py");
const python = testPython();
const hasClient = spawnSync(python, ["-c", "import esphome_dashboard_api, aiohttp"]).status === 0;

interface ClientRun {
  version: string;
  results: unknown[];
}

function runClient(port: number, actions: object[]): Promise<ClientRun> {
  return new Promise((resolve, reject) => {
    execFile(python, [CLIENT, `http://127.0.0.1:${port}`, JSON.stringify(actions)], { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as ClientRun);
    });
  });
}

const PORCH = `esphome:\n  name: porch\n  friendly_name: Porch light\nesp8266:\n  board: d1_mini\nwifi:\n  ssid: !secret wifi_ssid\n  password: !secret wifi_password\napi:\n  encryption:\n    key: "bXlzZWNyZXRrZXlteXNlY3JldGtleW15c2VjcmV0a2U="\nota:\n  - platform: esphome\n`;

async function builderWithDevices() {
  const dir = await configDir({ kitchen: "" });
  await writeFile(path.join(dir, "porch.yaml"), PORCH);
  const started = await startBuilder({}, dir);
  await waitFor(() => started.builder.info().esphome_version !== null && started.builder.devices.list().length === 2, 10_000, "scan and version probe");
  return started;
}

function get(port: number, urlPath: string, localAddress?: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: urlPath, ...(localAddress === undefined ? {} : { localAddress }) }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => { resolve({ status: res.statusCode ?? 0, body, type: String(res.headers["content-type"]) }); });
    });
    req.on("error", reject);
  });
}

interface Frame {
  event: string;
  data?: string;
  code?: number;
}

/** Opens /compile or /upload, sends `first` (if any), collects frames until the server closes. */
function spawnSocket(port: number, kind: "compile" | "upload", first?: string, opts: { closeAfterFirstLine?: boolean } = {}): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/${kind}`);
    const frames: Frame[] = [];
    ws.on("open", () => { if (first !== undefined) ws.send(first); });
    ws.on("message", (data: Buffer) => {
      frames.push(JSON.parse(data.toString("utf8")) as Frame);
      if (opts.closeAfterFirstLine === true && frames.length === 1) ws.close();
    });
    ws.on("close", () => { resolve(frames); });
    ws.on("error", reject);
  });
}

beforeEach(() => {
  vi.stubEnv("ESPHOME_STANDIN_COMPILE_SECONDS", "0.2");
  vi.stubEnv("ESPHOME_STANDIN_UPLOAD_SECONDS", "0.1");
  vi.stubEnv("ESPHOME_STANDIN_FAIL", "");
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe.skipIf(missingTool(hasClient, "esphome-dashboard-api in .venv"))("legacy dashboard API with the real esphome-dashboard-api client", () => {
  it("lists devices, reads a config and its key, compiles and uploads with streamed lines", { timeout: 60_000 }, async () => {
    const { builder, port, dir } = await builderWithDevices();
    const run = await runClient(port, [
      { do: "devices" },
      { do: "config", configuration: "porch.yaml" },
      { do: "encryption_key", configuration: "porch.yaml" },
      { do: "config", configuration: "missing.yaml" },
      { do: "compile", configuration: "kitchen.yaml" },
      { do: "upload", configuration: "kitchen.yaml", port: "OTA" },
      { do: "devices" },
    ]);
    console.log(`esphome-dashboard-api ${run.version}`);
    const [devices, config, key, missing, compile, upload, after] = run.results as [
      { configured: Record<string, unknown>[]; importable: unknown[] },
      Record<string, unknown>,
      string,
      null,
      { ok: boolean; lines: string[] },
      { ok: boolean; lines: string[] },
      { configured: Record<string, unknown>[] },
    ];
    expect(devices.importable).toEqual([]);
    const kitchen = devices.configured.find((d) => d.configuration === "kitchen.yaml");
    expect(kitchen).toMatchObject({
      name: "kitchen",
      configuration: "kitchen.yaml",
      address: "kitchen.local",
      current_version: builder.info().esphome_version,
      deployed_version: "",
      target_platform: "ESP32",
      path: path.join(dir, "kitchen.yaml"),
      comment: null,
    });
    expect(kitchen?.loaded_integrations).toEqual(expect.arrayContaining(["api", "ota", "wifi"]));
    expect(devices.configured.find((d) => d.configuration === "porch.yaml")).toMatchObject({ name: "porch", target_platform: "ESP8266" });

    expect(config).toMatchObject({ esphome: { name: "porch" }, wifi: { ssid: "test", password: "secret" } });
    expect(key).toBe("bXlzZWNyZXRrZXlteXNlY3JldGtleW15c2VjcmV0a2U=");
    expect(missing).toBeNull();

    expect(compile.ok).toBe(true);
    expect(compile.lines.join("")).toMatch(/SUCCESS/);
    expect(compile.lines.every((l) => /[\r\n]$/.test(l))).toBe(true);
    expect(upload.ok).toBe(true);
    expect(upload.lines.join("")).toMatch(/OTA successful/);

    // Both ran as jobs on the normal queue, so the panel shows them.
    const jobs = builder.queue.list();
    expect(jobs.map((j) => [j.job_type, j.status]).sort()).toEqual([["compile", "completed"], ["upload", "completed"]]);
    expect(jobs.find((j) => j.job_type === "upload")?.port).toBe("OTA");
    // After the build, the deployed version is the one that compiled it.
    expect(after.configured.find((d) => d.configuration === "kitchen.yaml")?.deployed_version).toBe(builder.info().esphome_version);
  });

  it("reports a failed compile as a failure, with the compiler's lines", async () => {
    vi.stubEnv("ESPHOME_STANDIN_FAIL", "compile");
    const { builder, port } = await builderWithDevices();
    const run = await runClient(port, [{ do: "compile", configuration: "kitchen.yaml" }]);
    const [compile] = run.results as [{ ok: boolean; lines: string[] }];
    expect(compile.ok).toBe(false);
    expect(compile.lines.join("")).toMatch(/FAILED|error/i);
    expect(builder.queue.list()[0]?.status).toBe("failed");
  });
});

describeNeeding(() => realEsphomeVersion().version === null ? realEsphomeVersion().reason : null, "legacy /json-config with the real ESPHome CLI", () => {
  it("returns the validated configuration, secrets resolved and ESPHome's tags read as plain values", { timeout: 60_000 }, async () => {
    const dir = await configDir({});
    await writeFile(path.join(dir, "secrets.yaml"), "wifi_ssid: testnetwork\nwifi_password: longenoughpassword\n");
    await writeFile(path.join(dir, "porch.yaml"), `${PORCH}sensor:\n  - platform: template\n    name: Answer\n    lambda: return 42.0;\n`);
    const { port } = await startBuilder({ esphome: REAL_ESPHOME }, dir);
    const res = await get(port, "/json-config?configuration=porch.yaml");
    expect(res.status, res.body).toBe(200);
    expect(res.type).toMatch(/application\/json/);
    const config = JSON.parse(res.body) as { api: { encryption: { key: string } }; wifi: { networks: { ssid: string }[] }; sensor: { lambda: string }[] };
    expect(config.api.encryption.key).toBe("bXlzZWNyZXRrZXlteXNlY3JldGtleW15c2VjcmV0a2U=");
    expect(config.wifi.networks[0]?.ssid).toBe("testnetwork");
    expect(config.sensor[0]?.lambda).toBe("return 42.0;");
  });
});

describe("legacy dashboard API edges", () => {
  it("answers /ping, and /json-config with 404 for a missing file and 400 for a bad name", async () => {
    const { port } = await builderWithDevices();
    const ping = await get(port, "/ping");
    expect(ping.status).toBe(200);
    expect(JSON.parse(ping.body)).toEqual({ "kitchen.yaml": null, "porch.yaml": null });
    expect((await get(port, "/json-config?configuration=nope.yaml")).status).toBe(404);
    expect((await get(port, "/json-config?configuration=..%2Fsecrets.yaml")).status).toBe(400);
    expect((await get(port, "/json-config")).status).toBe(400);
  });

  it("answers 422 with ESPHome's message when the configuration does not validate", async () => {
    const dir = await configDir({ broken: "standin_invalid: true\n" });
    const { port } = await startBuilder({}, dir);
    const res = await get(port, "/json-config?configuration=broken.yaml");
    expect(res.status).toBe(422);
    expect(res.body.length).toBeGreaterThan(0);
  });

  it("refuses a bad spawn message with a line and exit code 1, and runs nothing", async () => {
    const { builder, port } = await builderWithDevices();
    for (const message of ["not json", '{"type": "run", "configuration": "kitchen.yaml"}', '{"type": "spawn", "configuration": "../etc/passwd.yaml"}', '{"type": "spawn", "configuration": "ghost.yaml"}']) {
      const frames = await spawnSocket(port, "compile", message);
      expect(frames.at(-1)).toEqual({ event: "exit", code: 1 });
      expect(frames[0]?.event).toBe("line");
    }
    const upload = await spawnSocket(port, "upload", '{"type": "spawn", "configuration": "kitchen.yaml", "port": "bad port!"}');
    expect(upload.at(-1)).toEqual({ event: "exit", code: 1 });
    expect(builder.queue.list()).toEqual([]);
  });

  it("cancels the job when the client goes away before the end", async () => {
    vi.stubEnv("ESPHOME_STANDIN_COMPILE_SECONDS", "20");
    const { builder, port } = await builderWithDevices();
    await spawnSocket(port, "compile", '{"type": "spawn", "configuration": "kitchen.yaml"}', { closeAfterFirstLine: true });
    await waitFor(() => builder.queue.list()[0]?.status === "cancelled", 10_000, "the job to be cancelled");
  });
});

/** Opens `n` sockets to /compile, sends each the same spawn in one go, and collects every socket's frames until it closes. */
async function concurrentSpawns(port: number, n: number, spawn: string): Promise<Frame[][]> {
  const sockets = await Promise.all(
    Array.from({ length: n }, () => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/compile`);
      ws.once("open", () => { resolve(ws); });
      ws.once("error", reject);
    })),
  );
  const runs = sockets.map((ws) => new Promise<Frame[]>((resolve) => {
    const frames: Frame[] = [];
    ws.on("message", (data: Buffer) => frames.push(JSON.parse(data.toString("utf8")) as Frame));
    ws.on("close", () => { resolve(frames); });
  }));
  for (const ws of sockets) ws.send(spawn);
  return Promise.all(runs);
}

describe("legacy follow of a job that ended before it was followed", () => {
  it("a real builder process survives concurrent spawns of one configuration with its job logs unusable", async () => {
    const dir = await configDir();
    const builder = await spawnBuilder(
      ["--config-dir", dir, "--port", "0", "--peer-link-port", "0", "--peer-link-host", "127.0.0.1", "--esphome", STAND_IN, "--no-mdns", "--log-level", "warning"],
      { ESPHOME_STANDIN_COMPILE_SECONDS: "0.3", ESPHOME_STANDIN_FAIL: "" },
    );
    // A file where the job-logs folder belongs: every log read and removal
    // fails (ENOTDIR), as on a failing disk or with no file descriptors left.
    const { jobLogsDir } = resolvePaths({ configDir: dir });
    await rm(jobLogsDir, { recursive: true, force: true });
    await writeFile(jobLogsDir, "");
    // Each newer job supersedes the older ones, which may end (and be pruned
    // from the history) before their own client's follow starts: that follow
    // read a log that was not there and crashed the process.
    const results = await concurrentSpawns(builder.port, 4, '{"type": "spawn", "configuration": "kitchen.yaml"}');

    // A crash closes the sockets just before the process is seen to exit.
    const crashed = await Promise.race([builder.exited.then(() => true), new Promise<false>((r) => setTimeout(() => { r(false); }, 500))]);
    expect(crashed, builder.stderr.join("")).toBe(false);
    for (const frames of results) expect(frames.at(-1)?.event).toBe("exit");
    expect(results.map((frames) => frames.at(-1)?.code).sort()).toEqual([0, 1, 1, 1]); // the newest job ran, the others were superseded
    expect((await get(builder.port, "/ping")).status).toBe(200);
  });

  /** Runs `end` on each new job after it is queued and before the legacy API follows it. */
  function endBeforeFollow(builder: Builder, end: (jobId: string) => Promise<void>): void {
    const enqueue = builder.queue.enqueue.bind(builder.queue);
    builder.queue.enqueue = async (...args: Parameters<typeof enqueue>) => {
      const job = await enqueue(...args);
      await end(job.job_id);
      return job;
    };
  }

  it("tells the client in a line when the ended job's log cannot be read, and exits 1", async () => {
    const { builder, port } = await builderWithDevices();
    // The job ends between being queued and being followed (as when superseded), and its
    // output cannot be read back (a job log that is not a file: injected, since the queue now
    // keeps the output of a job whose log it could not write in memory).
    endBeforeFollow(builder, async (id) => {
      builder.queue.cancel(id);
      await waitFor(() => builder.queue.get(id)?.status === "cancelled", 5000, "the cancel");
      builder.queue.output = () => Promise.reject(new Error(`ENOTDIR: not a directory, open '${builder.paths.jobLog(id)}'`));
    });
    const frames = await spawnSocket(port, "compile", '{"type": "spawn", "configuration": "kitchen.yaml"}');
    expect(frames).toEqual([
      { event: "line", data: expect.stringMatching(/^\*\*\* The job's log could not be read: ENOTDIR.* \*\*\*\n$/) as string },
      { event: "exit", code: 1 },
    ]);
    expect(builder.queue.list()[0]?.status).toBe("cancelled");
  });

  it("tells the client in a line when the ended job has already left the history, and exits 1", async () => {
    const { builder, port } = await builderWithDevices();
    endBeforeFollow(builder, async (id) => {
      builder.queue.cancel(id);
      await waitFor(() => builder.queue.get(id)?.status === "cancelled", 5000, "the cancel");
      await builder.queue.clearHistory();
    });
    const frames = await spawnSocket(port, "compile", '{"type": "spawn", "configuration": "kitchen.yaml"}');
    expect(frames).toEqual([
      { event: "line", data: expect.stringMatching(/^\*\*\* Job [0-9a-f]{12} ended and left the history before it could be followed \*\*\*\n$/) as string },
      { event: "exit", code: 1 },
    ]);
  });
});
